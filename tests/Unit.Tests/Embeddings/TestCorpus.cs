using System.Text.Json;

namespace RagOrleans.Unit.Tests.Embeddings;

/// <summary>
/// Real text from the shared evaluation data, read in place (it is never copied into the repo), plus hand-written
/// lines aimed at the tokenizer's edge cases.
/// </summary>
internal static class TestCorpus
{

    /// <summary>The shared/data folder: the repo is cloned beside shared/, so walk up from the test binaries.</summary>
    public static string DataDirectory => TestData.Root;

    /// <summary>Hand-written lines for cases the real data may not contain.</summary>
    public static IReadOnlyList<string> EdgeCases { get; } =
    [
        "See |i_CTRL-V_digit|",
        "a=b<c>d|e$f+g^h~i",
        "x→y",
        "word\nword\tword\rword",
        "snake_case_name and __dunder__ and a_b",
        "中文分词测试：北京大学的学生。",
        "日本語のテキストです。カタカナとひらがな、漢字。",
        "한국어 문장입니다.",
        "Emoji 😀 inside 👍🏽 text 🇩🇪 and ZWJ 👩‍💻 family",
        "Café naïve résumé Ångström façade Øresund İstanbul straße",
        "ΣΟΦΙΑ ΟΔΟΣ σοφός Ελληνικά α-β-γ ±5 µm Ω ≤ ≥ ∑",
        "Ｆｕｌｌｗｉｄｔｈ ｌｅｔｔｅｒｓ and ｆｉ ligature",
        "control\u0000chars\u0007and\uFFFDreplacement\u200Bzero\u00ADwidth",
        "non\u00A0breaking\u2003em space\u3000ideographic\u2028line\u2029para",
        "literal [CLS] and [SEP] and [MASK] markers[PAD]glued [unk] [UNK]",
        "private\uE000use and lone \uD800 surrogate",
        "tabs\t\t\tand   many    spaces",
        "",
        "   ",
        new string('a', 100) + " " + new string('b', 101) + " x" + new string('é', 101),
        "supercalifragilisticexpialidocious-antidisestablishmentarianism",
        "URLs https://example.com/path?q=1&r=2#frag and emails someone@example.org",
        "C# code: `var x = new List<int> { 1, 2 }; x?.Count ?? 0;` // comment",
        string.Join(' ', Enumerable.Repeat("tokenization stress sentence with many words.", 80)),
    ];

    /// <summary>Every line source the agreement test uses, with a label for reporting.</summary>
    public static IEnumerable<(string Source, string Line)> AllLines()
    {
        foreach (var line in EdgeCases)
        {
            yield return ("edge", line);
        }

        var docs = Path.Combine(DataDirectory, "docs");
        foreach (var file in Directory.EnumerateFiles(Path.Combine(docs, "md", "orleans"), "*.md", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            foreach (var line in NonEmptyLines(file))
            {
                yield return ("md", line);
            }
        }

        foreach (var folder in new[] { "txt", "xml", "html" })
        {
            foreach (var file in Directory.EnumerateFiles(Path.Combine(docs, folder)).Order(StringComparer.Ordinal))
            {
                foreach (var line in NonEmptyLines(file))
                {
                    yield return (folder, line);
                }
            }
        }

        foreach (var line in File.ReadLines(Path.Combine(DataDirectory, "scifact", "corpus.jsonl")))
        {
            using var doc = JsonDocument.Parse(line);
            yield return ("scifact", doc.RootElement.GetProperty("title").GetString() ?? string.Empty);
            yield return ("scifact", doc.RootElement.GetProperty("text").GetString() ?? string.Empty);
        }
    }

    private static IEnumerable<string> NonEmptyLines(string file) =>
        File.ReadLines(file).Where(l => !string.IsNullOrWhiteSpace(l));
}
