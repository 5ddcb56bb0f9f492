using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using Xunit;
using Xunit.Sdk;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>
/// A fact that needs the system Chromium. It runs (and fails loudly when the browser is missing) unless the test
/// script reported, through <c>RAG_BROWSER_UNAVAILABLE</c>, that it could not install the browser.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class BrowserFactAttribute : FactAttribute
{
    public BrowserFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("RAG_BROWSER_UNAVAILABLE") is { Length: > 0 } reason)
        {
            Skip = "Chromium could not be installed by the test script: " + reason;
        }
    }
}

/// <summary>One browser for a test class, started on first use (so a class's non-browser tests never need it).</summary>
public sealed class BrowserFixture : IDisposable
{
    private readonly Lazy<HeadlessChromium> _browser = new(HeadlessChromium.Start);

    /// <summary>The browser on a fresh page at <paramref name="url"/>, with this origin's session storage cleared.</summary>
    public HeadlessChromium Open(string url)
    {
        var browser = _browser.Value;
        browser.Driver.Navigate().GoToUrl(url);
        browser.Driver.ExecuteScript("sessionStorage.clear()");
        browser.Driver.Navigate().Refresh();
        return browser;
    }

    public void Dispose()
    {
        if (_browser.IsValueCreated)
        {
            _browser.Value.Dispose();
        }
    }
}

/// <summary>
/// Headless Debian Chromium driven through the system chromedriver. Both paths are given explicitly so that
/// Selenium Manager never runs (it would try to download a driver or a browser).
/// </summary>
public sealed class HeadlessChromium : IDisposable
{
    private readonly ChromeDriverService _service;
    private readonly string _profile;

    private HeadlessChromium(ChromeDriverService service, ChromeDriver driver, string profile)
    {
        _service = service;
        Driver = driver;
        _profile = profile;
    }

    public ChromeDriver Driver { get; }

    public static HeadlessChromium Start()
    {
        var browser = Environment.GetEnvironmentVariable("RAG_CHROMIUM") ?? "/usr/bin/chromium";
        var driverPath = Environment.GetEnvironmentVariable("RAG_CHROMEDRIVER") ?? "/usr/bin/chromedriver";
        if (!File.Exists(browser) || !File.Exists(driverPath))
        {
            throw new XunitException(
                $"The web page test needs Chromium ({browser}) and its driver ({driverPath}), and at least one is missing. " +
                "Install the Debian packages: apt-get install -y chromium chromium-driver (scripts/test.sh does this when run as root), " +
                "or point RAG_CHROMIUM and RAG_CHROMEDRIVER at them.");
        }

        // Belt and braces: even if some code path reached Selenium Manager, it must not touch the network.
        Environment.SetEnvironmentVariable("SE_OFFLINE", "true");
        var profile = TestPaths.NewTempDir("chromium");
        var options = new ChromeOptions { BinaryLocation = browser };
        options.AddArguments(
            "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1000",
            "--user-data-dir=" + profile, "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
            "--lang=en-US");
        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(driverPath)!, Path.GetFileName(driverPath));
        service.SuppressInitialDiagnosticInformation = true;
        service.HideCommandPromptWindow = true;
        try
        {
            var driver = new ChromeDriver(service, options, TimeSpan.FromSeconds(30));
            driver.Manage().Timeouts().AsynchronousJavaScript = TimeSpan.FromSeconds(20);
            return new HeadlessChromium(service, driver, profile);
        }
        catch
        {
            service.Dispose();
            throw;
        }
    }

    /// <summary>Saves a PNG of the page under artifacts/ui (git-ignored) and returns its path.</summary>
    public string Screenshot(string name)
    {
        var dir = Path.Combine(TestPaths.RepoRoot, "artifacts", "ui");
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, name + ".png");
        Driver.GetScreenshot().SaveAsFile(path);
        return path;
    }

    /// <summary>Polls <paramref name="probe"/> until it returns non-null, or fails with <paramref name="what"/> and the page's state.</summary>
    public T Until<T>(Func<T?> probe, string what, int seconds = 20) where T : class
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(seconds);
        Exception? last = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                if (probe() is { } value)
                {
                    return value;
                }
            }
            catch (Exception ex) when (ex is StaleElementReferenceException or NoSuchElementException or InvalidOperationException)
            {
                last = ex;
            }

            Thread.Sleep(100);
        }

        throw new XunitException($"Timed out after {seconds} s waiting for {what}.{(last is null ? "" : " Last error: " + last.Message)}\nPage text:\n{PageText()}");
    }

    /// <summary>The visible text of the page, for failure messages.</summary>
    public string PageText()
    {
        try
        {
            return Driver.FindElement(By.TagName("body")).Text;
        }
        catch (WebDriverException ex)
        {
            return "(unavailable: " + ex.Message + ")";
        }
    }

    public void Dispose()
    {
        try
        {
            Driver.Quit();
        }
        finally
        {
            Driver.Dispose();
            _service.Dispose();
            try
            {
                Directory.Delete(_profile, recursive: true);
            }
            catch (IOException)
            {
                // Chromium may still hold a lock file for a moment; the temp folder is cleaned eventually.
            }
        }
    }
}
