using System.Globalization;
using System.Text.Json;
using RagOrleans.Abstractions;

namespace RagOrleans.Grains.Retrieval;

/// <summary>The filterable fields of a document, shared by all its chunks.</summary>
public sealed class DocumentAttributes
{
    private readonly JsonElement? _metadata;

    public DocumentAttributes(string documentId, string? title, string? metadataJson)
    {
        DocumentId = documentId;
        Title = title;
        MetadataJson = metadataJson;
        if (metadataJson is not null)
        {
            using var doc = JsonDocument.Parse(metadataJson);
            _metadata = doc.RootElement.Clone();
        }
    }

    public string DocumentId { get; }

    public string? Title { get; }

    public string? MetadataJson { get; }

    /// <summary>The value of a built-in field or a metadata path ("a.b" walks nested objects); null when absent.</summary>
    public JsonElement? Get(string field)
    {
        switch (field)
        {
            case "documentId":
                return JsonSerializer.SerializeToElement(DocumentId);
            case "title":
                return Title is null ? null : JsonSerializer.SerializeToElement(Title);
        }

        if (_metadata is not { ValueKind: JsonValueKind.Object } current)
        {
            return null;
        }

        foreach (var part in field.Split('.'))
        {
            if (current.ValueKind != JsonValueKind.Object || !current.TryGetProperty(part, out current))
            {
                return null;
            }
        }

        return current;
    }
}

/// <summary>
/// A metadata filter: <c>{"field": value}</c> for equality, <c>{"field": {"in": [..]}}</c>, and ranges
/// <c>{"field": {"gte": a, "lt": b}}</c> (also <c>gt</c>, <c>lte</c>, <c>eq</c>, <c>ne</c>) over numbers, strings and ISO-8601
/// dates. Several fields must all match. Built-in fields: <c>documentId</c>, <c>title</c>; anything else is a
/// metadata path. Evaluated per candidate during the index walk, so selective filters still fill top-k.
/// </summary>
public sealed class MetadataFilter
{
    private const int MaxConditions = 32;
    private readonly List<(string Field, string Op, JsonElement Operand)> _conditions;

    private MetadataFilter(List<(string, string, JsonElement)> conditions) => _conditions = conditions;

    /// <summary>Parses and validates a filter; Invalid with a clear message when malformed.</summary>
    public static MetadataFilter Parse(string json)
    {
        JsonElement root;
        try
        {
            using var doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 8 });
            root = doc.RootElement.Clone();
        }
        catch (JsonException ex)
        {
            throw RagException.Invalid("filter is not valid JSON: " + ex.Message);
        }

        if (root.ValueKind != JsonValueKind.Object)
        {
            throw RagException.Invalid("filter must be a JSON object of field conditions.");
        }

        var conditions = new List<(string, string, JsonElement)>();
        foreach (var property in root.EnumerateObject())
        {
            if (property.Name.Length is 0 or > 128)
            {
                throw RagException.Invalid("filter field names must have 1-128 characters.");
            }

            if (property.Value.ValueKind == JsonValueKind.Object)
            {
                foreach (var op in property.Value.EnumerateObject())
                {
                    conditions.Add((property.Name, Validate(property.Name, op.Name, op.Value), op.Value));
                }
            }
            else
            {
                conditions.Add((property.Name, "eq", RequireScalar(property.Name, property.Value)));
            }

            if (conditions.Count > MaxConditions)
            {
                throw RagException.Invalid($"filter may have at most {MaxConditions} conditions.");
            }
        }

        return new MetadataFilter(conditions);
    }

    /// <summary>True when every condition holds for <paramref name="document"/>.</summary>
    public bool Matches(DocumentAttributes document)
    {
        foreach (var (field, op, operand) in _conditions)
        {
            var value = document.Get(field);
            if (!Holds(value, op, operand))
            {
                return false;
            }
        }

        return true;
    }

    private static bool Holds(JsonElement? value, string op, JsonElement operand)
    {
        if (value is not { } v || v.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined)
        {
            return op == "ne";
        }

        switch (op)
        {
            case "eq":
                return EqualsValue(v, operand);
            case "ne":
                return !EqualsValue(v, operand);
            case "in":
                foreach (var item in operand.EnumerateArray())
                {
                    if (EqualsValue(v, item))
                    {
                        return true;
                    }
                }

                return false;
            default:
                var c = Compare(v, operand);
                return c is { } cmp && op switch
                {
                    "gt" => cmp > 0,
                    "gte" => cmp >= 0,
                    "lt" => cmp < 0,
                    "lte" => cmp <= 0,
                    _ => false,
                };
        }
    }

    private static bool EqualsValue(JsonElement value, JsonElement operand)
    {
        if (value.ValueKind == JsonValueKind.Array)
        {
            // A list-valued field (tags) matches when any element does.
            foreach (var item in value.EnumerateArray())
            {
                if (EqualsValue(item, operand))
                {
                    return true;
                }
            }

            return false;
        }

        return Compare(value, operand) == 0
            || (value.ValueKind is JsonValueKind.True or JsonValueKind.False && value.ValueKind == operand.ValueKind);
    }

    /// <summary>Numbers compare numerically, ISO dates chronologically, other strings ordinally; mixed kinds do not compare.</summary>
    private static int? Compare(JsonElement value, JsonElement operand)
    {
        if (value.ValueKind == JsonValueKind.Number && operand.ValueKind == JsonValueKind.Number)
        {
            return value.GetDouble().CompareTo(operand.GetDouble());
        }

        if (value.ValueKind == JsonValueKind.String && operand.ValueKind == JsonValueKind.String)
        {
            var a = value.GetString()!;
            var b = operand.GetString()!;
            if (LooksLikeDate(a) && LooksLikeDate(b)
                && DateTimeOffset.TryParse(a, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var da)
                && DateTimeOffset.TryParse(b, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var db))
            {
                return da.CompareTo(db);
            }

            return string.CompareOrdinal(a, b);
        }

        return null;
    }

    private static bool LooksLikeDate(string s) => s.Length >= 10 && char.IsAsciiDigit(s[0]) && s[4] == '-' && s[7] == '-';

    private static string Validate(string field, string op, JsonElement operand)
    {
        switch (op)
        {
            case "eq" or "ne" or "gt" or "gte" or "lt" or "lte":
                RequireScalar(field, operand);
                return op;
            case "in":
                if (operand.ValueKind != JsonValueKind.Array || operand.GetArrayLength() is 0 or > 1000)
                {
                    throw RagException.Invalid($"filter '{field}': 'in' needs an array of 1-1000 values.");
                }

                foreach (var item in operand.EnumerateArray())
                {
                    RequireScalar(field, item);
                }

                return op;
            default:
                throw RagException.Invalid($"filter '{field}': unknown operator '{op}'; use eq, ne, in, gt, gte, lt or lte.");
        }
    }

    private static JsonElement RequireScalar(string field, JsonElement value) =>
        value.ValueKind is JsonValueKind.String or JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False
            ? value
            : throw RagException.Invalid($"filter '{field}': values must be strings, numbers or booleans.");
}
