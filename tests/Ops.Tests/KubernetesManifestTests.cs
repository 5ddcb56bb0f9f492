using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using RagOrleans.ServiceDefaults;
using Xunit;
using Xunit.Abstractions;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.Serialization;

namespace RagOrleans.Ops.Tests;

/// <summary>
/// The kustomize manifests agree with each other and with the code: selectors match labels, references resolve,
/// every environment variable is a configuration key the code reads, probes hit paths and ports the processes
/// serve, and the silo's shutdown and rollout settings hold. Overlays are rendered with <c>kubectl kustomize</c>
/// when it is installed; otherwise their own files are checked together with the base.
/// </summary>
public sealed partial class KubernetesManifestTests(ITestOutputHelper output)
{
    private const string Silo = "ragorleans-silo", Frontend = "ragorleans-frontend", Secrets = "ragorleans-secrets", Config = "ragorleans-config";

    /// <summary>Secrets an overlay expects to exist without creating them (prod provisions them out of band).</summary>
    private static readonly Dictionary<string, string[]> ExternalSecrets = new() { ["base"] = [], ["dev"] = [], ["prod"] = [Secrets] };

    public static TheoryData<string> Sets => new() { "base", "dev", "prod" };

    [Fact]
    public void Every_manifest_file_parses()
    {
        var files = Directory.EnumerateFiles(Repo.PathOf("k8s"), "*.yaml", SearchOption.AllDirectories).ToList();
        Assert.True(files.Count >= 10, "too few manifest files");
        foreach (var file in files)
        {
            var docs = Load(File.ReadAllText(file));
            Assert.NotEmpty(docs);
            foreach (var doc in docs)
            {
                Assert.True(doc.ContainsKey("kind") || doc.ContainsKey("resources"), $"{file}: neither a resource nor a kustomization");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Sets))]
    public void Workload_selectors_match_their_pod_labels_and_services_pdbs_hpas_and_ingresses_find_their_targets(string set)
    {
        var docs = Render(set);
        var workloads = docs.Where(d => Kind(d) is "Deployment" or "StatefulSet").ToList();
        Assert.Contains(workloads, w => Name(w) == Silo);
        Assert.Contains(workloads, w => Name(w) == Frontend);
        foreach (var w in workloads)
        {
            var selector = Labels(Get(w, "spec", "selector", "matchLabels"));
            Assert.NotEmpty(selector);
            Assert.True(IsSubset(selector, PodLabels(w)), $"{set}: {Name(w)} selects labels its pods do not have");
        }

        foreach (var service in docs.Where(d => Kind(d) == "Service"))
        {
            var selector = Labels(Get(service, "spec", "selector"));
            var target = workloads.Where(w => IsSubset(selector, PodLabels(w))).ToList();
            Assert.True(target.Count == 1, $"{set}: Service {Name(service)} selects {target.Count} workloads");
            foreach (var port in List(Get(service, "spec", "ports")))
            {
                var targetPort = Str(port, "targetPort") ?? Str(port, "port");
                Assert.True(ContainerPorts(target[0]).ContainsKey(targetPort!) || ContainerPorts(target[0]).ContainsValue(targetPort!),
                    $"{set}: Service {Name(service)} targets port {targetPort}, which {Name(target[0])} does not expose");
            }
        }

        foreach (var set2 in docs.Where(d => Kind(d) == "StatefulSet"))
        {
            Assert.Contains(docs, d => Kind(d) == "Service" && Name(d) == Str(Map(set2, "spec"), "serviceName"));
        }

        var pdbs = docs.Where(d => Kind(d) == "PodDisruptionBudget").ToList();
        Assert.Contains(pdbs, p => IsSubset(Labels(Get(p, "spec", "selector", "matchLabels")), PodLabels(workloads.Single(w => Name(w) == Silo))));

        var hpas = docs.Where(d => Kind(d) == "HorizontalPodAutoscaler").ToList();
        Assert.Equal(new[] { Frontend, Silo }, hpas.Select(h => Str(Map(h, "spec", "scaleTargetRef"), "name")).Order().ToArray());
        foreach (var hpa in hpas)
        {
            var target = Str(Map(hpa, "spec", "scaleTargetRef"), "name");
            Assert.Contains(workloads, w => Kind(w) == "Deployment" && Name(w) == target);
            Assert.Contains(List(Get(hpa, "spec", "metrics")), m => Str(m, "type") == "Resource");
        }

        Assert.Contains(List(Get(hpas.Single(h => Name(h) == Frontend), "spec", "metrics")), m => Str(m, "type") == "Pods");

        var ingress = docs.Single(d => Kind(d) == "Ingress");
        foreach (var rule in List(Get(ingress, "spec", "rules")))
        {
            foreach (var path in List(Get(rule, "http", "paths")))
            {
                var backend = Map(path, "backend", "service");
                var service = docs.Single(d => Kind(d) == "Service" && Name(d) == Str(backend, "name"));
                var portName = Str(Map(backend, "port"), "name");
                Assert.Contains(List(Get(service, "spec", "ports")), p => Str(p, "name") == portName);
                Assert.False(TelemetryExtensions.IsOperationalPath(Str(path, "path")!), "probes and /metrics stay inside the cluster");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Sets))]
    public void Every_referenced_config_map_and_secret_exists_and_names_are_consistent(string set)
    {
        var docs = Render(set);
        var namespaces = docs.Where(d => Kind(d) == "Namespace").Select(Name).ToList();
        Assert.Equal(["ragorleans"], namespaces);
        foreach (var doc in docs.Where(d => Kind(d) != "Namespace"))
        {
            Assert.StartsWith("ragorleans", Name(doc), StringComparison.Ordinal);
            if (IsRendered)
            {
                Assert.Equal("ragorleans", Str(Map(doc, "metadata"), "namespace"));
            }
        }

        var configMaps = docs.Where(d => Kind(d) == "ConfigMap").Select(Name).ToHashSet();
        var secrets = docs.Where(d => Kind(d) == "Secret").Select(Name).Concat(ExternalSecrets[set]).ToHashSet();
        foreach (var container in docs.SelectMany(Containers))
        {
            foreach (var from in List(Get(container, "envFrom")))
            {
                if (Get(from, "configMapRef") is { } cm)
                {
                    Assert.Contains(Str(cm, "name")!, configMaps);
                }

                if (Get(from, "secretRef") is { } s)
                {
                    Assert.Contains(Str(s, "name")!, secrets);
                }
            }

            foreach (var env in List(Get(container, "env")))
            {
                if (Get(env, "valueFrom", "secretKeyRef") is { } sk)
                {
                    Assert.Contains(Str(sk, "name")!, secrets);
                }

                if (Get(env, "valueFrom", "configMapKeyRef") is { } ck)
                {
                    Assert.Contains(Str(ck, "name")!, configMaps);
                }
            }
        }

        // Patches apply only when rendered.
        if (set == "prod" && IsRendered)
        {
            Assert.DoesNotContain(docs, d => Kind(d) == "Secret" && Name(d) == Secrets);
            Assert.DoesNotContain(docs, d => Kind(d) == "StatefulSet");
        }

        if (set == "dev")
        {
            Assert.Contains(docs, d => Kind(d) == "StatefulSet" && Name(d) == "ragorleans-postgres");
            Assert.Contains(docs, d => Kind(d) == "StatefulSet" && Name(d) == "ragorleans-redis");
            if (IsRendered)
            {
                var secret = docs.Single(d => Kind(d) == "Secret" && Name(d) == Secrets);
                Assert.DoesNotContain("REPLACE_ME", string.Join(' ', Labels(Get(secret, "stringData")).Values), StringComparison.Ordinal);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Sets))]
    public void Every_environment_variable_of_our_containers_is_a_configuration_key_the_code_reads(string set)
    {
        var docs = Render(set);
        var checkedNames = new HashSet<string>();
        foreach (var container in docs.SelectMany(Containers).Where(IsOurs))
        {
            var names = List(Get(container, "env")).Select(e => Str(e, "name")!).ToList();
            foreach (var from in List(Get(container, "envFrom")))
            {
                var (kind, refName) = Get(from, "configMapRef") is { } cm ? ("ConfigMap", Str(cm, "name")) : ("Secret", Str(Get(from, "secretRef")!, "name"));
                var source = docs.FirstOrDefault(d => Kind(d) == kind && Name(d) == refName);
                if (source is not null)
                {
                    names.AddRange(Labels(Get(source, "data")).Keys);
                    names.AddRange(Labels(Get(source, "stringData")).Keys);
                }
            }

            foreach (var name in names)
            {
                Assert.True(IsReadByCode(name), $"{set}: environment variable {name} of {Str(container, "name")} is no configuration key the code reads");
                checkedNames.Add(name);
            }
        }

        foreach (var expected in new[] { "POD_NAME", "POD_IP", "Rag__Mode", "Rag__ShutdownTimeout", "Orleans__SiloPort" })
        {
            Assert.Contains(expected, checkedNames);
        }

        // The check itself must be able to fail.
        Assert.False(IsReadByCode("Rag__NoSuchSetting"));
        Assert.False(IsReadByCode("POSTGRES_PASSWORD"));
    }

    [Theory]
    [MemberData(nameof(Sets))]
    public void Probes_hit_paths_and_ports_the_processes_serve(string set)
    {
        var docs = Render(set);
        var config = Labels(Get(docs.Single(d => Kind(d) == "ConfigMap" && Name(d) == Config), "data"));
        foreach (var workload in docs.Where(d => Kind(d) == "Deployment"))
        {
            var container = Containers(workload).Single();
            var ports = ContainerPorts(workload);
            var dockerfile = Name(workload) == Silo ? "src/Silo/Dockerfile" : "src/Frontend/Dockerfile";
            var urls = DockerfileTests.Instructions(dockerfile).Where(i => i.Op == "ENV").Select(i => UrlsPort().Match(i.Args)).Single(m => m.Success);
            Assert.Equal(urls.Groups[1].Value, ports["http"]);

            var probes = new Dictionary<string, string> { ["startupProbe"] = Probes.Startup, ["livenessProbe"] = Probes.Live, ["readinessProbe"] = Probes.Ready };
            foreach (var (probe, path) in probes)
            {
                var http = Map(container, probe, "httpGet");
                Assert.Equal(path, Str(http, "path"));
                var port = Str(http, "port")!;
                Assert.True(ports.ContainsKey(port) || ports.ContainsValue(port), $"{Name(workload)}: {probe} port {port} is not a container port");
            }

            if (Name(workload) == Silo)
            {
                Assert.Equal(config["Orleans__SiloPort"], ports["silo"]);
                Assert.Equal(config["Orleans__GatewayPort"], ports["gateway"]);
            }
        }

        Assert.Contains("\"" + Probes.Startup + "\"", Repo.SourceText.Replace(" ", "", StringComparison.Ordinal), StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Sets))]
    public void Silos_roll_without_losing_capacity_and_shut_down_within_their_grace_period(string set)
    {
        var docs = Render(set);
        var config = Labels(Get(docs.Single(d => Kind(d) == "ConfigMap" && Name(d) == Config), "data"));
        var shutdown = TimeSpan.Parse(config["Rag__ShutdownTimeout"], CultureInfo.InvariantCulture);
        foreach (var workload in docs.Where(d => Kind(d) == "Deployment"))
        {
            var pod = Map(workload, "spec", "template", "spec");
            var grace = int.Parse(Str(pod, "terminationGracePeriodSeconds")!, CultureInfo.InvariantCulture);
            Assert.True(grace > shutdown.TotalSeconds, $"{Name(workload)}: grace {grace}s is not above the shutdown timeout {shutdown}");
            Assert.Equal("0", Str(Map(workload, "spec", "strategy", "rollingUpdate"), "maxUnavailable"));
            Assert.Equal("true", Str(Map(pod, "securityContext"), "runAsNonRoot"));
        }

        foreach (var container in docs.SelectMany(Containers))
        {
            Assert.NotNull(Get(container, "resources", "requests", "memory"));
            Assert.NotNull(Get(container, "resources", "limits", "memory"));
        }

        var silo = docs.Single(d => Kind(d) == "Deployment" && Name(d) == Silo);
        var env = List(Get(Containers(silo).Single(), "env")).ToDictionary(e => Str(e, "name")!, e => Str(Map(e, "valueFrom", "fieldRef"), "fieldPath"));
        Assert.Equal("metadata.name", env["POD_NAME"]);
        Assert.Equal("status.podIP", env["POD_IP"]);
        Assert.NotNull(Get(silo, "spec", "template", "spec", "affinity", "podAntiAffinity"));
    }

    // ---- rendering -------------------------------------------------------------------------------------

    private static readonly Lazy<bool> KubectlAvailable = new(() =>
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo("kubectl", ["version", "--client"]) { RedirectStandardOutput = true, RedirectStandardError = true });
            p!.WaitForExit(30_000);
            return p.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    });

    private bool IsRendered => KubectlAvailable.Value;

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, Lazy<(List<Dictionary<object, object>> Docs, string Note)>> Rendered = new();

    private List<Dictionary<object, object>> Render(string set)
    {
        var (docs, note) = Rendered.GetOrAdd(set, s => new Lazy<(List<Dictionary<object, object>>, string)>(() => RenderOnce(s))).Value;
        output.WriteLine(note);
        return docs;
    }

    private static (List<Dictionary<object, object>> Docs, string Note) RenderOnce(string set)
    {
        var dir = set == "base" ? Repo.PathOf("k8s/base") : Repo.PathOf($"k8s/overlays/{set}");
        if (KubectlAvailable.Value)
        {
            var psi = new ProcessStartInfo("kubectl", ["kustomize", dir]) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEnd();
            p.WaitForExit();
            Assert.True(p.ExitCode == 0, $"kubectl kustomize {set} failed: {stderr}");
            return (Load(stdout.Result).Where(d => d.Count > 0).ToList(), $"{set}: rendered with kubectl kustomize");
        }

        // No kubectl: only the render step is skipped; the overlay's own resources are checked with the base's.
        var files = new List<string>();
        Collect(dir, files);
        return (files.SelectMany(f => Load(File.ReadAllText(f))).Where(d => d.ContainsKey("kind")).ToList(),
            $"{set}: kubectl not installed, render step skipped; checking the base and overlay resource files as written");
    }

    private static void Collect(string dir, List<string> files)
    {
        var kustomization = Load(File.ReadAllText(Path.Combine(dir, "kustomization.yaml"))).Single();
        foreach (var resource in List(Get(kustomization, "resources")).Select(r => r.ToString()!))
        {
            var path = Path.GetFullPath(Path.Combine(dir, resource));
            if (Directory.Exists(path))
            {
                Collect(path, files);
            }
            else
            {
                files.Add(path);
            }
        }
    }

    private static List<Dictionary<object, object>> Load(string yaml)
    {
        var deserializer = new DeserializerBuilder().Build();
        var parser = new Parser(new StringReader(yaml));
        parser.Consume<StreamStart>();
        var docs = new List<Dictionary<object, object>>();
        while (parser.Accept<DocumentStart>(out _))
        {
            docs.Add(deserializer.Deserialize<Dictionary<object, object>?>(parser) ?? []);
        }

        return docs;
    }

    // ---- the code's configuration keys ------------------------------------------------------------------

    private static bool IsReadByCode(string name)
    {
        // Read by the .NET host, ASP.NET Core's logging or the OpenTelemetry SDK, not by our code.
        if (name.StartsWith("ASPNETCORE_", StringComparison.Ordinal) || name.StartsWith("DOTNET_", StringComparison.Ordinal)
            || name.StartsWith("OTEL_", StringComparison.Ordinal) || name.StartsWith("Logging__", StringComparison.Ordinal) || name == "Urls")
        {
            return true;
        }

        var key = name.Replace("__", ":", StringComparison.Ordinal);
        if (Repo.SourceText.Contains($"\"{key}\"", StringComparison.Ordinal))
        {
            return true;
        }

        if (key.StartsWith("ConnectionStrings:", StringComparison.Ordinal))
        {
            return Repo.SourceText.Contains($"GetConnectionString(\"{key["ConnectionStrings:".Length..]}\")", StringComparison.Ordinal);
        }

        // An options class bound to the section, with a settable property of that name.
        var split = key.LastIndexOf(':');
        if (split < 0)
        {
            return false;
        }

        var (section, property) = (key[..split], key[(split + 1)..]);
        return Repo.SourceFiles.Any(f => f.Contains($"Section = \"{section}\";", StringComparison.Ordinal)
            && Regex.IsMatch(f, $@"public [^;=(]+ {Regex.Escape(property)} \{{ get; set; \}}"));
    }

    // ---- YAML navigation ---------------------------------------------------------------------------------

    private static string Kind(Dictionary<object, object> doc) => Str(doc, "kind") ?? "";

    private static string Name(Dictionary<object, object> doc) => Str(Map(doc, "metadata"), "name") ?? "";

    private static bool IsOurs(Dictionary<object, object> container) =>
        Str(container, "image") is { } image && (image.Contains("ragorleans-", StringComparison.Ordinal) || image.Contains("/ragorleans/", StringComparison.Ordinal));

    private static IEnumerable<Dictionary<object, object>> Containers(Dictionary<object, object> doc) =>
        Kind(doc) is "Deployment" or "StatefulSet" ? List(Get(doc, "spec", "template", "spec", "containers")).Cast<Dictionary<object, object>>() : [];

    private static Dictionary<string, string> PodLabels(Dictionary<object, object> workload) => Labels(Get(workload, "spec", "template", "metadata", "labels"));

    private static Dictionary<string, string> ContainerPorts(Dictionary<object, object> workload) =>
        Containers(workload).SelectMany(c => List(Get(c, "ports"))).ToDictionary(p => Str(p, "name")!, p => Str(p, "containerPort")!);

    private static bool IsSubset(Dictionary<string, string> selector, Dictionary<string, string> labels) =>
        selector.Count > 0 && selector.All(kv => labels.TryGetValue(kv.Key, out var v) && v == kv.Value);

    private static object? Get(object node, params string[] path)
    {
        var current = node;
        foreach (var key in path)
        {
            if (current is not Dictionary<object, object> map || !map.TryGetValue(key, out current))
            {
                return null;
            }
        }

        return current;
    }

    private static Dictionary<object, object> Map(object node, params string[] path) =>
        Get(node, path) as Dictionary<object, object> ?? throw new Xunit.Sdk.XunitException($"missing mapping {string.Join('.', path)}");

    private static List<object> List(object? node) => node as List<object> ?? [];

    private static string? Str(object? node, string key) => node is Dictionary<object, object> map && map.TryGetValue(key, out var v) ? v?.ToString() : null;

    private static Dictionary<string, string> Labels(object? node) =>
        node is Dictionary<object, object> map ? map.ToDictionary(kv => kv.Key.ToString()!, kv => kv.Value?.ToString() ?? "") : [];

    [GeneratedRegex(@"Urls=http://\+:(\d+)")]
    private static partial Regex UrlsPort();
}
