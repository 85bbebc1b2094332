namespace LaneQueue.Consumer.Testing;

/// <summary>
/// AMQP topic matching, as the broker applies a binding to <c>lanequeue.events</c>: words separated by dots,
/// <c>*</c> matches exactly one word, <c>#</c> zero or more.
/// </summary>
internal static class TopicPattern
{
    public static bool Matches(string pattern, string routingKey)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        ArgumentNullException.ThrowIfNull(routingKey);
        return Match(pattern.Split('.'), 0, routingKey.Split('.'), 0);
    }

    static bool Match(string[] pattern, int p, string[] key, int k)
    {
        if (p == pattern.Length)
            return k == key.Length;
        if (pattern[p] == "#")
        {
            for (var skip = k; skip <= key.Length; skip++)
            {
                if (Match(pattern, p + 1, key, skip))
                    return true;
            }
            return false;
        }
        return k < key.Length && (pattern[p] == "*" || pattern[p] == key[k]) && Match(pattern, p + 1, key, k + 1);
    }
}
