using ScottPlot;

namespace RagOrleans.Bench;

/// <summary>Shared set-up of the benchmarks' ScottPlot charts (only the projects that reference ScottPlot compile it).</summary>
internal static class BenchPlot
{
    private const string FontName = "Liberation Sans";

    /// <summary>A new plot whose labels render: the self-contained Skia build has no fontconfig, so without a font file every label would be empty.</summary>
    public static Plot Create()
    {
        var plot = new Plot();
        var font = new[] { "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", @"C:\Windows\Fonts\arial.ttf" }
            .FirstOrDefault(File.Exists);
        if (font is not null)
        {
            Fonts.AddFontFile(FontName, font, bold: false, italic: false);
            plot.Font.Set(FontName);
        }

        return plot;
    }
}
