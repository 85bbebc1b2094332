using System.Net;
using System.Reflection;
using LaneQueue.Contracts;
using LaneQueue.Producer;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace LaneQueue.Dashboard;

/// <summary>
/// The dashboard's endpoints. Reading: <c>GET /</c> (the page), <c>assets/{name}</c>, <c>api/stats</c>,
/// <c>api/tasks/{id}</c>, <c>api/lanes/{lane}/dead-letters</c>, <c>api/schedules</c>, <c>api/delayed</c>. Acting (form posts with an antiforgery token, and only for
/// users who satisfy <see cref="LaneQueueDashboardOptions.ActionsPolicy"/>): <c>api/lanes/{lane}/pause</c>, <c>resume</c>, <c>api/schedules/{id}/pause|resume|remove</c>, <c>api/tasks/{id}/cancel</c>,
/// <c>mode</c>, <c>dead-letters/redrive</c> (one by <c>id</c>, or all), <c>dead-letters/purge</c>.
/// </summary>
internal static class DashboardEndpoints
{
    static readonly TimeSpan FirstSampleTimeout = TimeSpan.FromSeconds(15);

    /// <summary>The latest progress reports a task page gets at most (<c>progress_reports</c> says how many there were).</summary>
    const int ProgressEventsShown = 50;
    static readonly string Version = typeof(DashboardEndpoints).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "?";

    public static RouteGroupBuilder Map(RouteGroupBuilder group)
    {
        group.MapGet("/", PageAsync);
        group.MapGet("/assets/{name}", (string name) =>
            DashboardAssets.TryGet(name, out var text, out var type) ? Results.Text(text, type) : Results.NotFound());
        group.MapGet("/api/stats", StatsAsync);
        group.MapGet("/api/tasks/{id}", TaskAsync);
        group.MapGet("/api/lanes/{lane}/dead-letters", DeadLettersAsync);
        group.MapPost("/api/lanes/{lane}/pause", (HttpContext context, string lane) => ActAsync(context, lane, (p, l, _, ct) => Done(p.PauseLaneAsync(l, ct), new { paused = l.WireName() })));
        group.MapPost("/api/lanes/{lane}/resume", (HttpContext context, string lane) => ActAsync(context, lane, (p, l, _, ct) => Done(p.ResumeLaneAsync(l, ct), new { resumed = l.WireName() })));
        group.MapPost("/api/lanes/{lane}/mode", (HttpContext context, string lane) => ActAsync(context, lane, SetModeAsync));
        group.MapPost("/api/lanes/{lane}/dead-letters/redrive", (HttpContext context, string lane) => ActAsync(context, lane, RedriveAsync));
        group.MapPost("/api/lanes/{lane}/dead-letters/purge", (HttpContext context, string lane) => ActAsync(context, lane, PurgeAsync));
        group.MapGet("/api/schedules", SchedulesAsync);
        group.MapGet("/api/delayed", DelayedAsync);
        group.MapPost("/api/tasks/{id}/cancel", (HttpContext context, string id) => ActAsync(context, (p, _, ct) => CancelAsync(p, id, ct)));
        group.MapPost("/api/schedules/{id}/{change}", (HttpContext context, string id, string change) => ActAsync(context, (p, _, ct) => ChangeScheduleAsync(p, id, change, ct)));
        return group;
    }

    /// <summary>The page, with its base address, whether this user may act, and an antiforgery token for the actions.</summary>
    static async Task<IResult> PageAsync(HttpContext context, IAntiforgery antiforgery)
    {
        var basePath = (context.Request.PathBase + context.Request.Path).Value?.TrimEnd('/') + "/";
        var canAct = await CanActAsync(context);
        var tokens = antiforgery.GetAndStoreTokens(context);
        var page = DashboardAssets.Page
            .Replace("{{base}}", WebUtility.HtmlEncode(basePath), StringComparison.Ordinal)
            .Replace("{{actions}}", canAct ? "true" : "false", StringComparison.Ordinal)
            .Replace("{{token-field}}", WebUtility.HtmlEncode(tokens.FormFieldName), StringComparison.Ordinal)
            .Replace("{{token}}", WebUtility.HtmlEncode(canAct ? tokens.RequestToken ?? "" : ""), StringComparison.Ordinal)
            .Replace("{{version}}", WebUtility.HtmlEncode(Version), StringComparison.Ordinal);
        context.Response.Headers.CacheControl = "no-store";
        return Results.Content(page, "text/html; charset=utf-8");
    }

    static async Task<IResult> StatsAsync(HttpContext context, FleetSampler monitor, CancellationToken cancellationToken)
    {
        var snapshot = await monitor.LatestAsync(FirstSampleTimeout, cancellationToken);
        return Results.Json(new { snapshot, actions = await CanActAsync(context), version = Version }, TaskJson.Options);
    }

    static async Task<IResult> TaskAsync(string id, HostedProducer producer, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(id) || id.Length > 256)
            return Problem(400, "id must be a task id of 1 to 256 characters");
        var history = await (await producer.ConnectedAsync(cancellationToken)).GetTaskHistoryAsync(id, cancellationToken: cancellationToken);
        // A long task may report progress thousands of times: the page gets the latest reports and how many there were.
        var reports = history.Events.Count(e => e.Event == TaskEvent.Progress);
        var skip = Math.Max(0, reports - ProgressEventsShown);
        var events = skip == 0 ? history.Events : history.Events.Where(e => e.Event != TaskEvent.Progress || skip-- <= 0).ToList();
        return Results.Json(new { task_id = history.TaskId, events, progress_reports = reports, results = history.Results, final = history.Final,
            payload = history.Payload, payload_bytes = history.PayloadBytes }, TaskJson.Options);
    }

    static async Task<IResult> DeadLettersAsync(string lane, HostedProducer producer, CancellationToken cancellationToken)
    {
        if (!SessionLanes.TryParse(lane, out var which))
            return BadLane(lane);
        var letters = await (await producer.ConnectedAsync(cancellationToken)).DeadLetters.ListAsync(DeadLetters.QueueOf(which.Value), 200, cancellationToken);
        return Results.Json(letters.Select(l => new
        {
            task_id = l.TaskId, lane = l.Lane?.WireName(), reason = l.Reason, attempts = l.Attempts, last_error = l.LastError, at = l.At, body = l.Body,
        }), TaskJson.Options);
    }

    static async Task<IResult> SetModeAsync(LaneQueueProducer producer, SessionLane lane, IFormCollection form, CancellationToken cancellationToken)
    {
        var mode = form["mode"].ToString();
        if (!Enum.TryParse<TaskHandlerMode>(mode, ignoreCase: true, out var parsed) || !Enum.IsDefined(parsed) || int.TryParse(mode, out _))
            return Problem(400, $"mode '{mode}' is not internal, external or hybrid");
        await producer.SetLaneHandlerAsync(lane, parsed, cancellationToken: cancellationToken);
        return Results.Json(new { lane = lane.WireName(), mode = parsed.ToString().ToLowerInvariant() });
    }

    static async Task<IResult> RedriveAsync(LaneQueueProducer producer, SessionLane lane, IFormCollection form, CancellationToken cancellationToken)
    {
        var id = form["id"].ToString();
        var moved = await producer.DeadLetters.RedriveAsync(DeadLetters.QueueOf(lane), id.Length == 0 ? null : id, cancellationToken: cancellationToken);
        return Results.Json(new { lane = lane.WireName(), redriven = moved });
    }

    static async Task<IResult> PurgeAsync(LaneQueueProducer producer, SessionLane lane, IFormCollection form, CancellationToken cancellationToken)
    {
        try
        {
            return Results.Json(new { lane = lane.WireName(), purged = await producer.DeadLetters.PurgeAsync(DeadLetters.QueueOf(lane), cancellationToken) });
        }
        catch (RabbitMQ.Client.Exceptions.OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 404)
        {
            return Results.Json(new { lane = lane.WireName(), purged = 0 }); // no dead letter yet: the queue appears with the first
        }
    }

    /// <summary>The recurring schedules with their next due time and last firing.</summary>
    static async Task<IResult> SchedulesAsync(HostedProducer producer, CancellationToken cancellationToken)
    {
        var schedules = await (await producer.ConnectedAsync(cancellationToken)).ListSchedulesAsync(cancellationToken);
        return Results.Json(schedules.Select(s => new
        {
            id = s.Schedule.Id, cron = s.Schedule.Cron, time_zone = s.Schedule.TimeZone, interval_ms = s.Schedule.IntervalMs,
            lane = s.Schedule.Lane.WireName(), command_type = s.Schedule.CommandType, catch_up = s.Schedule.CatchUp ?? TaskSchedule.CatchUpSkip,
            paused = s.Paused, added_at = s.AddedAt, next_due = s.NextDue, last_firing = s.LastFiring,
        }), TaskJson.Options);
    }

    /// <summary>The delayed tasks waiting in the delay tree: how many, and the soonest due (read at most every few seconds).</summary>
    static async Task<IResult> DelayedAsync(DelayedTasks delayed, CancellationToken cancellationToken) =>
        delayed.Available
            ? Results.Json(await delayed.LatestAsync(cancellationToken), TaskJson.Options)
            : Problem(503, "delayed tasks are read through the RabbitMQ management API: set LaneQueueDashboardOptions.ManagementUrl (or 'lanequeue dashboard --management-url')");

    /// <summary>Cancels a task by id (a waiting delayed task is answered <c>cancelled</c> when it comes due, without running).</summary>
    static async Task<IResult> CancelAsync(LaneQueueProducer producer, string id, CancellationToken cancellationToken)
    {
        if (!TaskParser.IsValidId(id))
            return Problem(400, $"'{id}' is not a task id");
        await producer.CancelTaskAsync(id, cancellationToken);
        return Results.Json(new { cancelled = id });
    }

    static async Task<IResult> ChangeScheduleAsync(LaneQueueProducer producer, string id, string change, CancellationToken cancellationToken)
    {
        if (!TaskParser.IsValidId(id))
            return Problem(400, $"'{id}' is not a schedule id");
        if (change is not ("pause" or "resume" or "remove"))
            return Problem(404, $"'{change}' is not pause, resume or remove");
        if ((await producer.ListSchedulesAsync(cancellationToken)).All(s => s.Schedule.Id != id))
            return Problem(404, $"no schedule '{id}'");
        await (change switch
        {
            "pause" => producer.PauseScheduleAsync(id, cancellationToken),
            "resume" => producer.ResumeScheduleAsync(id, cancellationToken),
            _ => producer.RemoveScheduleAsync(id, cancellationToken),
        });
        return Results.Json(new { id, change });
    }

    static async Task<IResult> Done(Task action, object result)
    {
        await action;
        return Results.Json(result);
    }

    /// <summary>An action: allowed only by the actions policy, with a valid antiforgery token in the form.</summary>
    static Task<IResult> ActAsync(HttpContext context, string lane, Func<LaneQueueProducer, SessionLane, IFormCollection, CancellationToken, Task<IResult>> action) =>
        SessionLanes.TryParse(lane, out var which)
            ? ActAsync(context, (producer, form, ct) => action(producer, which.Value, form, ct), laneError: null)
            : ActAsync(context, (_, _, _) => Task.FromResult(BadLane(lane)), laneError: BadLane(lane));

    /// <summary>An action on no lane (a schedule's pause, resume, remove), under the same policy and antiforgery check.</summary>
    static Task<IResult> ActAsync(HttpContext context, Func<LaneQueueProducer, IFormCollection, CancellationToken, Task<IResult>> action) =>
        ActAsync(context, action, laneError: null);

    static async Task<IResult> ActAsync(HttpContext context, Func<LaneQueueProducer, IFormCollection, CancellationToken, Task<IResult>> action, IResult? laneError)
    {
        var policy = context.RequestServices.GetRequiredService<IOptions<LaneQueueDashboardOptions>>().Value.ActionsPolicy;
        if (policy is null)
            return Problem(403, "the dashboard is read-only: actions need LaneQueueDashboardOptions.ActionsPolicy (or 'lanequeue dashboard --enable-actions')");
        if (!await CanActAsync(context))
            return Problem(403, $"actions need the authorization policy '{policy}'");
        try
        {
            await context.RequestServices.GetRequiredService<IAntiforgery>().ValidateRequestAsync(context);
        }
        catch (AntiforgeryValidationException)
        {
            return Problem(400, "missing or invalid antiforgery token: reload the dashboard page and try again");
        }
        if (laneError is not null)
            return laneError;
        var cancellationToken = context.RequestAborted;
        var producer = await context.RequestServices.GetRequiredService<HostedProducer>().ConnectedAsync(cancellationToken);
        return await action(producer, await context.Request.ReadFormAsync(cancellationToken), cancellationToken);
    }

    static async Task<bool> CanActAsync(HttpContext context)
    {
        var policy = context.RequestServices.GetRequiredService<IOptions<LaneQueueDashboardOptions>>().Value.ActionsPolicy;
        return policy is not null
            && (await context.RequestServices.GetRequiredService<IAuthorizationService>().AuthorizeAsync(context.User, policy)).Succeeded;
    }

    static IResult BadLane(string lane) => Problem(400, $"lane '{lane}' is not a lane; expected one of {SessionLanes.NamesList}");

    static IResult Problem(int status, string error) => Results.Json(new { error }, statusCode: status);
}
