namespace RagOrleans.Grains.Indexing.Keyword;

/// <summary>
/// The Snowball English ("Porter2") stemmer, written from the algorithm description published at
/// snowballstem.org/algorithms/english/stemmer.html, in its long-standing form (Snowball 2.x: special R1 prefixes
/// <c>gener</c>, <c>commun</c>, <c>arsen</c>; the exceptional-form lists of that release). Its output matches
/// Snowball's published sample vocabulary for that release, which is also what Lucene, NLTK and PyStemmer 2.x produce.
/// </summary>
/// <remarks>
/// <para>Input is expected lower-cased; only <c>a</c>-<c>z</c> and the apostrophe have meaning to the algorithm (any
/// other character is treated as a non-vowel). The stem is never longer than the word, so stemming runs in place on a
/// caller-owned buffer with no allocation.</para>
/// <para>Thread-safe: the stemmer holds no state.</para>
/// </remarks>
public static class EnglishStemmer
{
    /// <summary>Stems one lower-case word.</summary>
    /// <param name="word">The word, lower-cased.</param>
    /// <returns>The stem; the same instance when nothing changed.</returns>
    public static string Stem(string word)
    {
        ArgumentNullException.ThrowIfNull(word);
        if (word.Length <= 2)
        {
            return word;
        }

        Span<char> buffer = word.Length <= 128 ? stackalloc char[word.Length] : new char[word.Length];
        word.AsSpan().CopyTo(buffer);
        var length = Stem(buffer);
        var stem = buffer[..length];
        return stem.SequenceEqual(word) ? word : new string(stem);
    }

    /// <summary>Stems a lower-case word in place.</summary>
    /// <param name="word">The word; on return its first <c>n</c> characters hold the stem.</param>
    /// <returns><c>n</c>, the length of the stem (never more than the word's length).</returns>
    public static int Stem(Span<char> word)
    {
        if (TryException1(word, out var special))
        {
            // A null replacement marks an invariant form, which stays as it is.
            special?.CopyTo(word);
            return special?.Length ?? word.Length;
        }

        // Per the algorithm: words of two letters or less are left as they are (checked before the initial
        // apostrophe goes, as Snowball does).
        if (word.Length <= 2)
        {
            return word.Length;
        }

        var w = word;
        if (w[0] == '\'')
        {
            // Shifted left so the stem always starts at word[0].
            w[1..].CopyTo(w);
            w = w[..^1];
        }

        var worker = new Worker(w);
        worker.Run();
        w[..worker.Length].Replace('Y', 'y');
        return worker.Length;
    }

    /// <summary>Whole-word exceptions checked before anything else ("exception1" in the Snowball script).</summary>
    /// <param name="word">The whole word.</param>
    /// <param name="replacement">The stem, or <c>null</c> for an invariant form.</param>
    private static bool TryException1(ReadOnlySpan<char> word, out string? replacement)
    {
        replacement = null;
        switch (word)
        {
            case "skis": replacement = "ski"; return true;
            case "skies": replacement = "sky"; return true;
            case "dying": replacement = "die"; return true;
            case "lying": replacement = "lie"; return true;
            case "tying": replacement = "tie"; return true;
            case "idly": replacement = "idl"; return true;
            case "gently": replacement = "gentl"; return true;
            case "ugly": replacement = "ugli"; return true;
            case "early": replacement = "earli"; return true;
            case "only": replacement = "onli"; return true;
            case "singly": replacement = "singl"; return true;
            case "sky" or "news" or "howe" or "atlas" or "cosmos" or "bias" or "andes": return true;
            default: return false;
        }
    }

    private static bool IsVowel(char c) => c is 'a' or 'e' or 'i' or 'o' or 'u' or 'y';

    /// <summary>The letters that may precede a removable <c>li</c> in Step 2.</summary>
    private static bool IsValidLiEnding(char c) => c is 'c' or 'd' or 'e' or 'g' or 'h' or 'k' or 'm' or 'n' or 'r' or 't';

    private static bool IsDouble(char a, char b) => a == b && a is 'b' or 'd' or 'f' or 'g' or 'm' or 'n' or 'p' or 'r' or 't';

    /// <summary>One word's state through the steps: the buffer, its current length and the region starts.</summary>
    private ref struct Worker
    {
        private readonly Span<char> _b;
        private int _n;
        private int _p1;
        private int _p2;

        public Worker(Span<char> buffer)
        {
            _b = buffer;
            _n = buffer.Length;
        }

        public readonly int Length => _n;

        public void Run()
        {
            MarkConsonantY();
            MarkRegions();
            Step0();
            Step1a();
            if (IsException2())
            {
                return;
            }

            Step1b();
            Step1c();
            Step2();
            Step3();
            Step4();
            Step5();
        }

        /// <summary>An initial y, or a y after a vowel, is a consonant: marked 'Y' so no vowel test matches it.</summary>
        private readonly void MarkConsonantY()
        {
            if (_b[0] == 'y')
            {
                _b[0] = 'Y';
            }

            // Left to right so that in "ayy" the second y follows a consonant 'Y' and stays a vowel, as in Snowball.
            for (var i = 1; i < _n; i++)
            {
                if (_b[i] == 'y' && IsVowel(_b[i - 1]))
                {
                    _b[i] = 'Y';
                }
            }
        }

        private void MarkRegions()
        {
            _p1 = _n;
            _p2 = _n;
            var w = _b[.._n];

            // These prefixes would otherwise get an R1 that lets generate/general/generous etc. collapse together.
            int start;
            if (w.StartsWith("gener") || w.StartsWith("arsen"))
            {
                start = 5;
            }
            else if (w.StartsWith("commun"))
            {
                start = 6;
            }
            else
            {
                start = AfterVowelThenNonVowel(0);
                if (start < 0)
                {
                    return;
                }
            }

            _p1 = start;
            var p2 = AfterVowelThenNonVowel(start);
            _p2 = p2 < 0 ? _n : p2;
        }

        /// <summary>The index just past the first non-vowel that follows a vowel, searching from <paramref name="from"/>; -1 when none.</summary>
        private readonly int AfterVowelThenNonVowel(int from)
        {
            for (var i = from; i + 1 < _n; i++)
            {
                if (IsVowel(_b[i]) && !IsVowel(_b[i + 1]))
                {
                    return i + 2;
                }
            }

            return -1;
        }

        private readonly bool EndsWith(string suffix) => _b[.._n].EndsWith(suffix);

        private readonly bool InR1(int suffixLength) => _n - suffixLength >= _p1;

        private readonly bool InR2(int suffixLength) => _n - suffixLength >= _p2;

        private void Replace(int suffixLength, string replacement)
        {
            var at = _n - suffixLength;
            replacement.CopyTo(_b[at..]);
            _n = at + replacement.Length;
        }

        /// <summary>
        /// Whether the word part <c>[0, end)</c> ends in a short syllable: non-vowel, vowel, non-vowel other than w, x
        /// or Y; or, at the very start of the word, vowel then non-vowel.
        /// </summary>
        private readonly bool EndsWithShortSyllable(int end)
        {
            if (end >= 3)
            {
                var last = _b[end - 1];
                if (!IsVowel(last) && last is not ('w' or 'x' or 'Y') && IsVowel(_b[end - 2]) && !IsVowel(_b[end - 3]))
                {
                    return true;
                }
            }

            return end == 2 && IsVowel(_b[0]) && !IsVowel(_b[1]);
        }

        private readonly bool HasVowelBefore(int end)
        {
            for (var i = 0; i < end; i++)
            {
                if (IsVowel(_b[i]))
                {
                    return true;
                }
            }

            return false;
        }

        /// <summary>Step 0: the longest of the possessive endings ' , 's , 's' goes.</summary>
        private void Step0()
        {
            if (EndsWith("'s'"))
            {
                _n -= 3;
            }
            else if (EndsWith("'s"))
            {
                _n -= 2;
            }
            else if (EndsWith("'"))
            {
                _n -= 1;
            }
        }

        private void Step1a()
        {
            if (EndsWith("sses"))
            {
                _n -= 2;
            }
            else if (EndsWith("ied") || EndsWith("ies"))
            {
                // "ties" -> "tie" but "cries" -> "cri": keep the e only when one letter precedes.
                _n -= _n - 3 > 1 ? 2 : 1;
            }
            else if (EndsWith("us") || EndsWith("ss"))
            {
                // Left alone: "bus", "class" are not plurals.
            }
            else if (EndsWith("s") && _n >= 2 && HasVowelBefore(_n - 2))
            {
                // The letter right before the s does not count, so "gas" and "this" keep it while "gaps" loses it.
                _n -= 1;
            }
        }

        /// <summary>Words that step 1a leaves in a form the remaining steps would damage (herring -> her).</summary>
        private readonly bool IsException2() => _b[.._n] switch
        {
            "inning" or "outing" or "canning" or "herring" or "earring" or "proceed" or "exceed" or "succeed" => true,
            _ => false,
        };

        private void Step1b()
        {
            int suffix;
            if (EndsWith("eedly"))
            {
                if (InR1(5))
                {
                    _n -= 3;
                }

                return;
            }

            if (EndsWith("eed"))
            {
                if (InR1(3))
                {
                    _n -= 1;
                }

                return;
            }

            if (EndsWith("ingly"))
            {
                suffix = 5;
            }
            else if (EndsWith("edly"))
            {
                suffix = 4;
            }
            else if (EndsWith("ing"))
            {
                suffix = 3;
            }
            else if (EndsWith("ed"))
            {
                suffix = 2;
            }
            else
            {
                return;
            }

            if (!HasVowelBefore(_n - suffix))
            {
                return;
            }

            _n -= suffix;
            if (EndsWith("at") || EndsWith("bl") || EndsWith("iz"))
            {
                _b[_n++] = 'e';
            }
            else if (_n >= 2 && IsDouble(_b[_n - 2], _b[_n - 1]))
            {
                _n -= 1;
            }
            else if (_p1 >= _n && EndsWithShortSyllable(_n))
            {
                // A short word (empty R1, short final syllable) had lost an e: "hop" -> "hope".
                _b[_n++] = 'e';
            }
        }

        /// <summary>Final y goes to i after a non-vowel that is not the first letter: cry -> cri, by -> by, say -> say.</summary>
        private readonly void Step1c()
        {
            if (_n >= 3 && _b[_n - 1] is 'y' or 'Y' && !IsVowel(_b[_n - 2]))
            {
                _b[_n - 1] = 'i';
            }
        }

        private void Step2()
        {
            if (_n < 2)
            {
                return;
            }

            // Dispatch on the last letter, then try longer suffixes first: Snowball acts only on the longest match.
            switch (_b[_n - 1])
            {
                case 'l':
                    if (EndsWith("ational"))
                    {
                        R1Replace(7, "ate");
                    }
                    else if (EndsWith("tional"))
                    {
                        R1Replace(6, "tion");
                    }

                    break;
                case 'n':
                    if (EndsWith("ization"))
                    {
                        R1Replace(7, "ize");
                    }
                    else if (EndsWith("ation"))
                    {
                        R1Replace(5, "ate");
                    }

                    break;
                case 'r':
                    if (EndsWith("izer"))
                    {
                        R1Replace(4, "ize");
                    }
                    else if (EndsWith("ator"))
                    {
                        R1Replace(4, "ate");
                    }

                    break;
                case 'm':
                    if (EndsWith("alism"))
                    {
                        R1Replace(5, "al");
                    }

                    break;
                case 's':
                    if (EndsWith("fulness"))
                    {
                        R1Replace(7, "ful");
                    }
                    else if (EndsWith("ousness"))
                    {
                        R1Replace(7, "ous");
                    }
                    else if (EndsWith("iveness"))
                    {
                        R1Replace(7, "ive");
                    }

                    break;
                case 'i':
                    Step2EndingInI();
                    break;
            }
        }

        private void Step2EndingInI()
        {
            if (EndsWith("biliti"))
            {
                R1Replace(6, "ble");
            }
            else if (EndsWith("lessli"))
            {
                R1Replace(6, "less");
            }
            else if (EndsWith("aliti"))
            {
                R1Replace(5, "al");
            }
            else if (EndsWith("iviti"))
            {
                R1Replace(5, "ive");
            }
            else if (EndsWith("ousli"))
            {
                R1Replace(5, "ous");
            }
            else if (EndsWith("entli"))
            {
                R1Replace(5, "ent");
            }
            else if (EndsWith("fulli"))
            {
                R1Replace(5, "ful");
            }
            else if (EndsWith("enci"))
            {
                R1Replace(4, "ence");
            }
            else if (EndsWith("anci"))
            {
                R1Replace(4, "ance");
            }
            else if (EndsWith("abli"))
            {
                R1Replace(4, "able");
            }
            else if (EndsWith("alli"))
            {
                R1Replace(4, "al");
            }
            else if (EndsWith("bli"))
            {
                R1Replace(3, "ble");
            }
            else if (EndsWith("ogi"))
            {
                if (InR1(3) && _n >= 4 && _b[_n - 4] == 'l')
                {
                    Replace(3, "og");
                }
            }
            else if (EndsWith("li"))
            {
                if (InR1(2) && _n >= 3 && IsValidLiEnding(_b[_n - 3]))
                {
                    _n -= 2;
                }
            }
        }

        private void R1Replace(int suffixLength, string replacement)
        {
            if (InR1(suffixLength))
            {
                Replace(suffixLength, replacement);
            }
        }

        private void Step3()
        {
            if (EndsWith("ational"))
            {
                R1Replace(7, "ate");
            }
            else if (EndsWith("tional"))
            {
                R1Replace(6, "tion");
            }
            else if (EndsWith("alize"))
            {
                R1Replace(5, "al");
            }
            else if (EndsWith("icate"))
            {
                R1Replace(5, "ic");
            }
            else if (EndsWith("iciti"))
            {
                R1Replace(5, "ic");
            }
            else if (EndsWith("ative"))
            {
                if (InR2(5))
                {
                    _n -= 5;
                }
            }
            else if (EndsWith("ical"))
            {
                R1Replace(4, "ic");
            }
            else if (EndsWith("ness"))
            {
                R1Replace(4, string.Empty);
            }
            else if (EndsWith("ful"))
            {
                R1Replace(3, string.Empty);
            }
        }

        private void Step4()
        {
            int suffix;
            if (EndsWith("ement"))
            {
                suffix = 5;
            }
            else if (EndsWith("ance") || EndsWith("ence") || EndsWith("able") || EndsWith("ible") || EndsWith("ment"))
            {
                suffix = 4;
            }
            else if (EndsWith("ant") || EndsWith("ent") || EndsWith("ism") || EndsWith("ate") || EndsWith("iti")
                || EndsWith("ous") || EndsWith("ive") || EndsWith("ize"))
            {
                suffix = 3;
            }
            else if (EndsWith("ion"))
            {
                if (InR2(3) && _n >= 4 && _b[_n - 4] is 's' or 't')
                {
                    _n -= 3;
                }

                return;
            }
            else if (EndsWith("al") || EndsWith("er") || EndsWith("ic"))
            {
                suffix = 2;
            }
            else
            {
                return;
            }

            if (InR2(suffix))
            {
                _n -= suffix;
            }
        }

        private void Step5()
        {
            if (_n == 0)
            {
                return;
            }

            var last = _b[_n - 1];
            if (last == 'e')
            {
                if (InR2(1) || (InR1(1) && !EndsWithShortSyllable(_n - 1)))
                {
                    _n -= 1;
                }
            }
            else if (last == 'l' && InR2(1) && _n >= 2 && _b[_n - 2] == 'l')
            {
                _n -= 1;
            }
        }
    }
}
