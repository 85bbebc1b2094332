using MassTransit;

namespace LaneQueue.Consumer;

/// <summary>
/// LaneQueue's own MassTransit bus (MassTransit's MultiBus): the lane endpoints live on it, so the host's own bus, if it
/// has one, is left as it was. Public only because MassTransit builds the bus type at run time.
/// </summary>
public interface ILaneQueueBus : IBus;
