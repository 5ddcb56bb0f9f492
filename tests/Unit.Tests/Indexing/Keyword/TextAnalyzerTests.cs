using RagOrleans.Grains.Indexing.Keyword;
using Xunit;

namespace RagOrleans.Unit.Tests.Indexing.Keyword;

public sealed class TextAnalyzerTests
{
    private static readonly TextAnalyzer Default = new();
    private static readonly TextAnalyzer Plain = new(new AnalyzerOptions { Stem = false, RemoveStopWords = false });

    private static List<string> Terms(TextAnalyzer analyzer, string text)
    {
        var terms = new List<string>();
        analyzer.Analyze(text, terms);
        return terms;
    }

    [Fact]
    public void Accents_are_folded_and_case_lowered()
    {
        Assert.Equal(["cafe", "eclair"], Terms(Default, "Café Éclair"));

        // Decomposed input (e + combining acute) folds the same as precomposed.
        Assert.Equal(["cafe"], Terms(Plain, "Cafe\u0301"));
        Assert.Equal(["naive", "zurich", "sao", "paulo"], Terms(Plain, "NAÏVE Zürich São-Paulo"));
    }

    [Fact]
    public void Ligatures_sharp_s_and_compatibility_forms_are_spelled_out()
    {
        Assert.Equal(
            ["strasse", "aesir", "oeuvre", "final", "abc", "orsted", "lodz", "thorn"],
            Terms(Plain, "Straße Æsir Œuvre ﬁnal ＡＢＣ Ørsted Łódź Þorn"));
    }

    [Fact]
    public void Stop_words_are_dropped()
    {
        Assert.Equal(["quick", "brown", "fox", "jump", "lazi", "dog"], Terms(Default, "The quick brown fox jumps over the lazy dog"));
        Assert.Empty(Terms(Default, "it is what it is, and that's that"));
    }

    [Fact]
    public void Inflections_share_a_stem()
    {
        // Irregular forms are beyond a suffix stripper: "ran" stays "ran".
        Assert.Equal(["run", "run", "ran"], Terms(Default, "running runs ran"));
        Assert.Equal(["connect", "connect", "connect", "connect"], Terms(Default, "connected connecting connection connections"));
    }

    [Fact]
    public void Apostrophes_follow_snowball()
    {
        // Inside a word the apostrophe stays (typographic forms normalised); the stemmer drops possessive 's.
        Assert.Equal(["o'neil", "book"], Terms(Default, "O’Neil's books"));
        Assert.Equal(["don't", "o'neil"], Terms(Plain, "Don’t O'Neil"));

        // Contractions in the stop list go; quotation marks around words are not apostrophes.
        Assert.Equal(["know"], Terms(Default, "I don't know"));
        Assert.Equal(["quot", "student", "work"], Terms(Default, "'quoted' the students' work"));
    }

    [Fact]
    public void Hyphens_and_punctuation_split()
    {
        Assert.Equal(["state", "art", "model"], Terms(Default, "state-of-the-art model"));
        Assert.Equal(["snake", "case", "user", "example", "com"], Terms(Plain, "snake_case user@example.com"));

        // Soft hyphens and zero-width joiners are invisible and do not split a word.
        Assert.Equal(["information"], Terms(Plain, "infor\u00ADma\u200Dtion"));
    }

    [Fact]
    public void Digits_form_tokens_and_are_not_stemmed()
    {
        // Digit runs are terms; letter-digit mixes stay one term; a decimal point splits.
        Assert.Equal(["covid", "19", "2020", "il6", "cd4s", "3", "5mg"], Terms(Default, "COVID-19 in 2020: IL6 CD4s 3.5mg"));
        Assert.Equal(["١٢٣"], Terms(Default, "١٢٣"));
    }

    [Fact]
    public void Cjk_runs_become_overlapping_bigrams()
    {
        Assert.Equal(["中文", "文分", "分词"], Terms(Default, "中文分词"));
        Assert.Equal(["猫"], Terms(Default, "猫"));
        Assert.Equal(["dna", "合成"], Terms(Default, "DNA合成"));
        Assert.Equal(["カタ", "タカ", "カナ", "ひら", "らが", "がな"], Terms(Default, "カタカナ ひらがな"));

        // Hangul is space-separated, so words stay whole.
        Assert.Equal(["한국어", "검색"], Terms(Default, "한국어 검색"));
    }

    [Fact]
    public void Over_long_tokens_are_dropped()
    {
        var analyzer = new TextAnalyzer(new AnalyzerOptions { MaxTokenLength = 10 });
        Assert.Equal(["short", "word"], Terms(analyzer, "short abcdefghijklmnop word"));
        Assert.Equal(["abcdefghij"], Terms(analyzer, "abcdefghij"));
    }

    [Fact]
    public void Options_switch_stemming_and_stop_words_off_and_replace_the_list()
    {
        Assert.Equal(["the", "running", "dogs"], Terms(Plain, "The running dogs"));
        var custom = new TextAnalyzer(new AnalyzerOptions { StopWords = ["Dogs", "running"] });
        Assert.Equal(["the"], Terms(custom, "The running dogs"));
        Assert.Contains("dogs", custom.StopWords);
        Assert.Equal(174, Default.StopWords.Count);
    }

    [Fact]
    public void Positions_count_dropped_tokens()
    {
        var sink = new RecordingSink([]);
        Default.Analyze("the cat sat on the mat", ref sink);
        Assert.Equal([("cat", 1), ("sat", 2), ("mat", 5)], sink.Terms);
    }

    [Fact]
    public void Lone_surrogates_and_empty_text_are_harmless()
    {
        Assert.Empty(Terms(Default, string.Empty));
        Assert.Equal(["ab", "cd"], Terms(Plain, "ab\uD800cd"));
        Assert.Equal(["aa"], Terms(Plain, "a\U0001D400")); // astral letter (mathematical bold A) folds by NFKD

    }

    private struct RecordingSink(List<(string, int)> terms) : ITermSink
    {
        public readonly List<(string, int)> Terms => terms;

        public readonly void Add(ReadOnlySpan<char> term, int position) => terms.Add((term.ToString(), position));
    }
}
