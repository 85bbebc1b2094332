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

    /// <summary>
    /// Registers a handler type that implements <see cref="ITaskHandler"/> or <see cref="ITaskHandler{TPayload}"/>; it is
    /// created per task from the container (its dependencies injected), or resolved when registered as a service.
    /// </summary>
    public void Add<THandler>(string commandType) where THandler : class
    {
        if (typeof(ITaskHandler).IsAssignableFrom(typeof(THandler)))
        {
            Add(commandType, services => (ITaskHandler)ActivatorUtilities.GetServiceOrCreateInstance<THandler>(services));
            return;
        }
        var typed = typeof(THandler).GetInterfaces().Where(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(ITaskHandler<>)).ToList();
        if (typed.Count != 1)
        {
            throw new ArgumentException(
                $"{typeof(THandler).Name} must implement ITaskHandler or exactly one ITaskHandler<TPayload> to handle '{commandType}'", nameof(THandler));
        }
        var adapter = typeof(TypedHandler<>).MakeGenericType(typed[0].GetGenericArguments()[0]);
        Add(commandType, services => (ITaskHandler)Activator.CreateInstance(adapter, ActivatorUtilities.GetServiceOrCreateInstance<THandler>(services))!);
    }

    /// <summary>Whether a handler is registered for the command type (or the default one, for none).</summary>
    public bool Handles(string? commandType) => _factories.ContainsKey(commandType ?? DefaultCommandType);

    /// <summary>The handler for a command type, or null when none is registered.</summary>
    public ITaskHandler? Resolve(string? commandType, IServiceProvider services) =>
        _factories.TryGetValue(commandType ?? DefaultCommandType, out var factory) ? factory(services) : null;
}
