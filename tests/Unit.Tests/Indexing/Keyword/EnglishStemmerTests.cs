using RagOrleans.Grains.Indexing.Keyword;
using Xunit;

namespace RagOrleans.Unit.Tests.Indexing.Keyword;

/// <summary>
/// Checks <see cref="EnglishStemmer"/> against word/stem pairs from Snowball's published sample vocabulary and against
/// the examples and exceptional forms given on the algorithm page.
/// </summary>
public sealed class EnglishStemmerTests
{
    // Sample-vocabulary pairs, copied verbatim from the Snowball project's English test data (snowball-data repository,
    // english/diffs.txt: voc.txt beside its output.txt, as produced by the Snowball 2.x Porter2 stemmer). That data is
    // (c) Dr Martin Porter and the Snowball contributors, under the BSD 3-clause licence. A word list is data, not code.
    // Pairs are grouped by the step they mainly exercise; "word:stem", whitespace separated.

    private const string VocabularyStep1a = """
        actresses:actress abysses:abyss addresses:address abscess:abscess cutlass:cutlass albatross:albatross
        actress:actress access:access glass:glass glasses:glass accompanies:accompani curries:curri
        intricacies:intricaci absurdities:absurd gallantries:gallantri galleries:galleri glories:glori allies:alli
        anchovies:anchovi anomalies:anomali anxieties:anxieti accompanied:accompani curtsied:curtsi dallied:dalli
        allied:alli complied:compli gloried:glori abuts:abut acts:act cues:cue cubes:cube adas:ada alas:ala dais:dai
        davis:davi iris:iri gas:gas gases:gase gaps:gap gags:gag alps:alp alms:alm its:it is:is cyprus:cyprus
        jesus:jesus isthmus:isthmus cynucus:cynucus genus:genus genius:genius allus:allus antarcticus:antarcticus
        """;

    private const string VocabularyStep1b = """
        abandoned:abandon abashed:abash abated:abat abhorred:abhor abhorring:abhor abiding:abid added:ad adding:ad
        add:add abutting:abut dabbing:dab dammed:dam jagged:jag jammed:jam jarring:jar ribbed:rib rigging:rig
        cutting:cut debarred:debar allotted:allot allotting:allot acquitted:acquit compelled:compel conferred:confer
        getting:get cuming:cume cured:cure curing:cure daring:dare dated:date dating:date dazed:daze jaded:jade
        jading:jade joked:joke joking:joke riding:ride gaping:gape gazing:gaze gibing:gibe gliding:glide glared:glare
        dabbled:dabbl abdicating:abdic gambled:gambl giggled:giggl alienated:alien amalgamated:amalgam
        crystallized:crystal analyzed:analyz admiringly:admir invitingly:invit jeeringly:jeer jestingly:jest
        reprovingly:reprov revivingly:reviv alarmingly:alarm gaspingly:gasp amazingly:amaz condescendingly:condescend
        abstractedly:abstract decidedly:decid amazedly:amaz composedly:compos confessedly:confess confoundedly:confound
        confusedly:confus cunning:cun conning:con jennings:jen curlings:curl darlings:darl dancings:danc gettings:get
        gatherings:gather decaying:decay curtseying:curtsey
        """;

    private const string VocabularyStep1c = """
        cry:cri crying:cri curry:curri daily:daili dairy:dairi jelly:jelli ivy:ivi irony:ironi cuffy:cuffi crusty:crusti
        custody:custodi galaxy:galaxi gaiety:gaieti gaily:gaili angry:angri ally:alli amply:ampli already:alreadi
        day:day days:day joy:joy gay:gay gainsay:gainsay decay:decay alley:alley galley:galley
        """;

    private const string VocabularyStep2 = """
        additional:addit conditional:condit decencies:decenc decency:decenc currency:currenc competency:compet
        complacency:complac damnably:damnabl culpability:culpabl amiability:amiabl amiably:amiabl currently:current
        decently:decent reverently:rever anciently:ancient crystallization:crystal generalization:general
        invitation:invit investigators:investig alteration:alter conspirator:conspir abnormality:abnorm
        accidentally:accident actuality:actual annually:annual deceitfulness:deceit resourcefulness:resourc
        joyously:joyous joyousness:joyous acrimoniously:acrimoni consciousness:conscious activity:activ acclivity:accliv
        adaptability:adapt irritability:irrit irascibly:irasc invisibly:invis geology:geolog analogies:analog
        analogy:analog genealogical:genealog reproachfully:reproach resentfully:resent gleefully:gleefulli
        restlessly:restless abruptly:abrupt darkly:dark jointly:joint richly:rich dearly:dear deadly:dead curly:cur
        ghastly:ghast gladly:glad genteelly:genteelli geously:geousli
        """;

    private const string VocabularyStep3 = """
        irrational:irrat abdicate:abdic ironical:iron ironically:iron jesuitical:jesuit rhythmically:rhythmic
        cylindrical:cylindr joyful:joy restful:rest resentful:resent revengeful:reveng glassful:glass darkness:dark
        curtness:curt abruptness:abrupt dampness:damp richness:rich gladness:glad restorative:restor
        representative:repres administrative:administr alternative:altern conservative:conserv anticipative:anticip
        """;

    private const string VocabularyStep4 = """
        abdominal:abdomin judicial:judici conjugal:conjug animal:anim abundance:abund resistance:resist
        acceptance:accept annoyance:annoy abstinence:abstin residence:resid confidence:confid cucumber:cucumb
        decanter:decant cylinder:cylind accuser:accus adapter:adapt cryptogamic:cryptogam rhetoric:rhetor cubic:cubic
        acceptable:accept irritable:irrit accessible:access irresistible:irresist invincible:invinc abundant:abund
        itinerant:itiner resonant:reson retirement:retir amazement:amaz judgement:judgement abandonment:abandon
        adjournment:adjourn investment:invest absorbent:absorb adherent:adher competent:compet cynicism:cynic
        rheumatism:rheumat antagonism:antagon accurate:accur intricate:intric inveterate:inveter cupidity:cupid
        absurdity:absurd debility:debil cutaneous:cutan deciduous:decidu ambiguous:ambigu abusive:abus intuitive:intuit
        adhesive:adhes revolutionized:revolution abortion:abort addition:addit invasion:invas adoption:adopt
        confession:confess reunion:reunion cushion:cushion ganglion:ganglion albion:albion
        """;

    private const string VocabularyStep5 = """
        abide:abid abate:abat acre:acr able:abl adage:adag culture:cultur cute:cute cure:cure dare:dare date:date
        ride:ride game:game gate:gate gave:gave give:give globe:globe cone:cone alone:alon alive:aliv consol:consol
        cudgelled:cudgel jewelled:jewel jeweller:jewel revellers:revel daniell:daniel gall:gall all:all gill:gill
        jell:jell
        """;

    private const string VocabularyRegions = """
        general:general generally:general generals:general generality:general generalities:general generate:generat
        generated:generat generation:generat generations:generat generic:generic generous:generous generously:generous
        generosity:generos genial:genial gentle:gentl gentleness:gentl
        """;

    private const string VocabularyExceptions = """
        gently:gentl andes:andes ande:and
        """;

    // Examples and exceptional forms stated on the algorithm page (snowballstem.org/algorithms/english/stemmer.html),
    // with the final stems the full algorithm gives them.
    private const string PageExamples = """
        skies:sky skis:ski dying:die lying:lie tying:tie idly:idl gently:gentl ugly:ugli early:earli only:onli
        singly:singl sky:sky news:news howe:howe atlas:atlas cosmos:cosmos bias:bias andes:andes
        inning:inning innings:inning outing:outing canning:canning herring:herring herrings:herring earring:earring
        earrings:earring proceed:proceed proceeds:proceed exceed:exceed succeed:succeed
        ties:tie cries:cri gas:gas this:this gaps:gap kiwis:kiwi hopping:hop hoping:hope luxuriating:luxuri
        cry:cri by:by say:say bed:bed shed:shed shred:shred bead:bead beds:bed
        generate:generat generates:generat generated:generat generating:generat general:general generally:general
        generic:generic generically:generic generous:generous generously:generous
        """;

    // Not taken from the vocabulary: derived by hand from the rule text for the parts the sample pages above do not
    // reach (Step 0 apostrophes, eed/eedly, the commun and arsen prefixes, y marking).
    private const string RuleExamples = """
        john's:john boys':boy boy's:boy children's:children jones's:jone 'tis:tis o'neil:o'neil don't:don't
        agreed:agre decreed:decre guaranteed:guarante feed:feed bleed:bleed deed:deed indeed:inde freed:freed
        needed:need proceedings:proceed exceedingly:exceed succeeded:succeed
        communication:communic communicate:communic community:communiti communism:communism communal:communal
        arsenal:arsenal arsenic:arsenic
        youth:youth yelled:yell eyed:eye sayings:say ayyy:ayyy
        """;

    [Theory]
    [InlineData(nameof(VocabularyStep1a), VocabularyStep1a)]
    [InlineData(nameof(VocabularyStep1b), VocabularyStep1b)]
    [InlineData(nameof(VocabularyStep1c), VocabularyStep1c)]
    [InlineData(nameof(VocabularyStep2), VocabularyStep2)]
    [InlineData(nameof(VocabularyStep3), VocabularyStep3)]
    [InlineData(nameof(VocabularyStep4), VocabularyStep4)]
    [InlineData(nameof(VocabularyStep5), VocabularyStep5)]
    [InlineData(nameof(VocabularyRegions), VocabularyRegions)]
    [InlineData(nameof(VocabularyExceptions), VocabularyExceptions)]
    [InlineData(nameof(PageExamples), PageExamples)]
    [InlineData(nameof(RuleExamples), RuleExamples)]
    public void Stems_match_the_reference_pairs(string group, string pairs)
    {
        var failures = new List<string>();
        foreach (var (word, expected) in Parse(pairs))
        {
            var actual = EnglishStemmer.Stem(word);
            if (actual != expected)
            {
                failures.Add($"{word}: expected {expected}, got {actual}");
            }
        }

        Assert.True(failures.Count == 0, $"{group}: {failures.Count} wrong stems:\n" + string.Join("\n", failures));
    }

    [Fact]
    public void Sample_vocabulary_subset_is_substantial()
    {
        var count = new[]
        {
            VocabularyStep1a, VocabularyStep1b, VocabularyStep1c, VocabularyStep2, VocabularyStep3, VocabularyStep4,
            VocabularyStep5, VocabularyRegions, VocabularyExceptions,
        }.Sum(group => Parse(group).Count());

        Assert.True(count >= 300, $"only {count} vocabulary pairs");
    }

    [Fact]
    public void Span_overload_stems_in_place_and_never_grows()
    {
        Span<char> buffer = stackalloc char[32];
        foreach (var (word, expected) in Parse(VocabularyStep1b).Concat(Parse(PageExamples)))
        {
            word.AsSpan().CopyTo(buffer);
            var length = EnglishStemmer.Stem(buffer[..word.Length]);
            Assert.InRange(length, 0, word.Length);
            Assert.Equal(expected, buffer[..length].ToString());
        }
    }

    [Fact]
    public void Unchanged_word_returns_the_same_instance_and_short_words_pass_through()
    {
        const string word = "abrupt";
        Assert.Same(word, EnglishStemmer.Stem(word));
        Assert.Equal("as", EnglishStemmer.Stem("as"));
        Assert.Equal("is", EnglishStemmer.Stem("is"));
        Assert.Equal(string.Empty, EnglishStemmer.Stem(string.Empty));
    }

    private static IEnumerable<(string Word, string Stem)> Parse(string pairs)
    {
        foreach (var pair in pairs.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
        {
            var colon = pair.IndexOf(':', StringComparison.Ordinal);
            yield return (pair[..colon], pair[(colon + 1)..]);
        }
    }
}
