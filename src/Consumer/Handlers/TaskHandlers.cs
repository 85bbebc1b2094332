using Microsoft.Extensions.DependencyInjection;

namespace LaneQueue.Consumer;

/// <summary>The handlers this consumer knows, by command type. Tasks without a command type run <see cref="DefaultCommandType"/>.</summary>
internal sealed class TaskHandlers
{
    readonly Dictionary<string, Func<IServiceProvider, ITaskHandler>> _factories = new(StringComparer.Ordinal);

    public string DefaultCommandType { get; set; } = EchoHandler.CommandType;

    public IReadOnlyCollection<string> CommandTypes => _factories.Keys;

    public void Add(string commandType, Func<IServiceProvider, ITaskHandler> factory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(commandType);
        _factories[commandType] = factory;
    }

    public void Add<THandler>(string commandType) where THandler : class, ITaskHandler =>
        Add(commandType, services => ActivatorUtilities.GetServiceOrCreateInstance<THandler>(services));

    /// <summary>The handler for a command type, or null when none is registered.</summary>
    public ITaskHandler? Resolve(string? commandType, IServiceProvider services) =>
        _factories.TryGetValue(commandType ?? DefaultCommandType, out var factory) ? factory(services) : null;
}
