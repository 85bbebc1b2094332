using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using LaneQueue.Tests.Faults;

namespace LaneQueue.Tests.Unit;

/// <summary>
/// docs/wire-contract.md and the README's "Wire format" section are read as data and checked against the contract types:
/// the task keys, the result fields, the statuses and the events. A field or status added in code and not in the docs (or
/// the other way round) fails here, so the two cannot drift apart again.
/// </summary>
public partial class WireContractDocsTests
{
    static readonly string Contract = File.ReadAllText(Path.Combine(Repo.Root, "docs", "wire-contract.md"));
    static readonly string Readme = File.ReadAllText(Path.Combine(Repo.Root, "README.md"));

    /// <summary>The text from a heading line to the next heading of the same or a higher level.</summary>
    static string Section(string markdown, string heading)
    {
        var start = markdown.IndexOf("\n" + heading + "\n", StringComparison.Ordinal);
        Assert.True(start >= 0, $"heading '{heading}' not found");
        var level = heading.TakeWhile(c => c == '#').Count();
        var rest = markdown[(start + heading.Length + 2)..];
        var next = Regex.Match(rest, $"^#{{1,{level}}} ", RegexOptions.Multiline);
        return next.Success ? rest[..next.Index] : rest;
    }

    /// <summary>The first column of the first table in <paramref name="section"/> whose header starts with <paramref name="firstHeader"/>, backticks removed.</summary>
    static List<string> FirstColumn(string section, string firstHeader)
    {
        var lines = section.Split('\n');
        var header = Array.FindIndex(lines, l => l.StartsWith($"| {firstHeader} |", StringComparison.Ordinal));
        Assert.True(header >= 0, $"no table with first header '{firstHeader}'");
        return [.. lines.Skip(header + 2).TakeWhile(l => l.StartsWith('|')).Select(l => l.Split('|')[1].Trim().Trim('`'))];
    }

    static List<string> WireNames<T>() =>
        [.. typeof(T).GetProperties().Select(p => p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name).OfType<string>()];

    [Fact]
    public void Result_field_table_lists_exactly_the_fields_of_ExternalTaskResult_in_order()
    {
        Assert.Equal(WireNames<ExternalTaskResult>(), FirstColumn(Section(Contract, "### 6.1 Fields"), "key"));
    }

    [Fact]
    public void Status_table_lists_exactly_TaskStatuses_All_in_order()
    {
        var documented = FirstColumn(Section(Contract, "### 6.2 Statuses"), "status");
        Assert.Equal(TaskStatuses.All, documented);
        var declared = typeof(TaskStatuses).GetFields(BindingFlags.Public | BindingFlags.Static).Where(f => f.IsLiteral).Select(f => (string)f.GetRawConstantValue()!);
        Assert.Equal(declared.Order(StringComparer.Ordinal), documented.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Event_table_lists_exactly_the_command_events_of_TaskEvent()
    {
        var declared = typeof(TaskEvent).GetFields(BindingFlags.Public | BindingFlags.Static).Where(f => f.IsLiteral && f.FieldType == typeof(string))
            .Select(f => (string)f.GetRawConstantValue()!).Where(e => e.StartsWith("command.", StringComparison.Ordinal));
        Assert.Equal(declared.Order(StringComparer.Ordinal), FirstColumn(Section(Contract, "### 6.3 Events"), "event").Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Task_key_tables_of_the_contract_and_the_README_list_exactly_the_keys_of_ExternalTask_and_the_schema()
    {
        var keys = WireNames<ExternalTask>();
        Assert.Equal(keys, FirstColumn(Section(Contract, "## 3. The task body"), "key"));
        Assert.Equal(keys, FirstColumn(Section(Readme, "## Wire format"), "key"));
        using var schema = JsonDocument.Parse(File.ReadAllText(Path.Combine(Repo.Root, "src", "Contracts", "external-task.schema.json")));
        Assert.Equal(keys, schema.RootElement.GetProperty("properties").EnumerateObject().Select(p => p.Name));
    }

    [Fact]
    public void Example_results_hold_only_documented_fields_and_read_as_ExternalTaskResult()
    {
        var fields = FirstColumn(Section(Contract, "### 6.1 Fields"), "key");
        foreach (var (name, text) in new[] { ("contract §6", Section(Contract, "## 6. Results")), ("README", Section(Readme, "## Wire format")) })
        {
            var json = JsonBlock().Matches(text).Select(m => m.Groups[1].Value).Single(j => j.Contains("\"task_id\"", StringComparison.Ordinal));
            if (name == "README")
                json = json.Replace("\"...\"", "\"2026-01-31T12:00:00Z\"", StringComparison.Ordinal);
            using var example = JsonDocument.Parse(json);
            Assert.All(example.RootElement.EnumerateObject(), p => Assert.Contains(p.Name, fields));
            var result = TaskJson.Deserialize<ExternalTaskResult>(System.Text.Encoding.UTF8.GetBytes(json));
            Assert.Equal(TaskStatuses.Completed, result.Status);
            Assert.Equal(1, result.Attempts);
        }
    }

    [Fact]
    public void README_names_every_status_and_every_result_field_where_it_describes_results()
    {
        var wire = Section(Readme, "## Wire format");
        Assert.All(TaskStatuses.All, status => Assert.Contains($"`{status}`", wire, StringComparison.Ordinal));
        var lifecycle = Section(Readme, "## Task lifecycle");
        var results = lifecycle[lifecycle.IndexOf("* **Results**", StringComparison.Ordinal)..];
        results = results[..results.IndexOf("\n* ", 2, StringComparison.Ordinal)];
        Assert.All(WireNames<ExternalTaskResult>(), field => Assert.Contains($"`{field}`", results, StringComparison.Ordinal));
    }

    [Fact]
    public void No_doc_says_a_reused_id_is_unchecked_or_that_a_broken_message_never_gets_a_result()
    {
        foreach (var text in new[] { Contract, Readme })
        {
            Assert.DoesNotContain("Not checked for uniqueness: reuse one", text, StringComparison.Ordinal);
            Assert.DoesNotContain("breaks the contract gets **no result**", text, StringComparison.Ordinal);
        }
    }

    [GeneratedRegex("```json\\n(.*?)\\n```", RegexOptions.Singleline)]
    private static partial Regex JsonBlock();
}

/// <summary>
/// The table of broker dead letters in docs/wire-contract.md §7 against the errors <c>BrokerDeadLetterAnswers</c> answers
/// with: one row per <c>x-death</c> reason, the documented text (with <c>lanequeue.&lt;lane&gt;</c> and N filled in) equal to
/// the code's; and no answer for a letter LaneQueue moved itself or one without <c>x-death</c>.
/// </summary>
public class BrokerDeadLetterDocsTests
{
    static Dictionary<string, object?> Death(string reason, string queue) => new()
    {
        ["x-death"] = new List<object> { new Dictionary<string, object?> { ["reason"] = System.Text.Encoding.UTF8.GetBytes(reason), ["queue"] = System.Text.Encoding.UTF8.GetBytes(queue), ["count"] = 1L } },
    };

    [Fact]
    public void Every_documented_reason_reads_as_the_error_the_fleet_answers_with()
    {
        var contract = File.ReadAllText(Path.Combine(Repo.Root, "docs", "wire-contract.md"));
        var section = contract[contract.IndexOf("### Broker dead letters", StringComparison.Ordinal)..];
        var rows = section.Split('\n').SkipWhile(l => !l.StartsWith("| x-death reason |", StringComparison.Ordinal)).Skip(2).TakeWhile(l => l.StartsWith('|'))
            .Select(l => l.Split('|').Select(c => c.Trim()).ToArray()).ToList();
        Assert.Equal(["`delivery_limit`", "`expired`", "`maxlen`", "`rejected`"], rows.Select(r => r[1]));
        foreach (var row in rows)
        {
            var reason = row[1].Trim('`');
            var documented = row[2][1..row[2].IndexOf('`', 1)].Replace("<lane>", "execute", StringComparison.Ordinal).Replace(" N ", " 21 ", StringComparison.Ordinal);
            var answered = LaneQueue.Consumer.BrokerDeadLetterAnswers.Explain(Death(reason, "lanequeue.execute"), deliveryLimit: 20);
            Assert.NotNull(answered);
            Assert.Equal(documented, answered.Value.Error);
            Assert.Equal("`failed`", row[3]);
        }
    }

    [Fact]
    public void A_letter_LaneQueue_moved_itself_or_one_the_broker_never_dead_lettered_gets_no_answer()
    {
        var ours = Death("delivery_limit", "lanequeue.execute");
        ours["MT-Fault-Message"] = "payload: missing"u8.ToArray();
        Assert.Null(LaneQueue.Consumer.BrokerDeadLetterAnswers.Explain(ours, 20));
        Assert.Null(LaneQueue.Consumer.BrokerDeadLetterAnswers.Explain(new Dictionary<string, object?> { ["x-lanequeue-attempt"] = 0 }, 20));
        Assert.Null(LaneQueue.Consumer.BrokerDeadLetterAnswers.Explain(null, 20));
    }

    [Fact]
    public void The_crash_suspect_section_names_the_header_and_the_error_the_consumer_uses()
    {
        var contract = File.ReadAllText(Path.Combine(Repo.Root, "docs", "wire-contract.md"));
        var section = contract[contract.IndexOf("### Crash suspects", StringComparison.Ordinal)..];
        section = section[..section.IndexOf("\n#", 1, StringComparison.Ordinal)];
        Assert.Contains($"`{LaneQueue.Contracts.BrokerNames.CrashesHeader}`", section, StringComparison.Ordinal);
        Assert.Contains($"`{LaneQueue.Contracts.BrokerNames.DeliveryCountHeader}`", section, StringComparison.Ordinal);
        Assert.Contains($"`{LaneQueue.Consumer.CrashSuspects.DeliveryLimitError(7).Replace(" 7 ", " N ", StringComparison.Ordinal)}`", section, StringComparison.Ordinal);
        Assert.Contains($"parked for {LaneQueue.Consumer.CrashSuspects.HoldDelay.TotalSeconds} s in the delay tree", section, StringComparison.Ordinal);
    }
}
