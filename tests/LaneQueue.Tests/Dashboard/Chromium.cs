using Microsoft.Playwright;

namespace LaneQueue.Tests.Dashboard;

/// <summary>
/// Debian's chromium driven by Playwright, one per test class. Playwright's own browser downloads are never used: the
/// browser is <c>/usr/bin/chromium</c> (or <c>LANEQUEUE_CHROMIUM</c>). Missing, every test fails saying how to install it.
/// </summary>
public sealed class Chromium : IAsyncLifetime
{
    public const string PathVariable = "LANEQUEUE_CHROMIUM";

    IPlaywright? _playwright;
    IBrowser? _browser;
    string? _failure;

    public static string ExecutablePath => Environment.GetEnvironmentVariable(PathVariable) is { Length: > 0 } path ? path : "/usr/bin/chromium";

    public async Task InitializeAsync()
    {
        if (!File.Exists(ExecutablePath))
        {
            _failure = $"No chromium at {ExecutablePath} for the dashboard's browser tests: install it with 'apt-get install -y chromium' " +
                       $"('bash scripts/install-example-deps.sh' and 'bash scripts/test.sh' do), or set {PathVariable} to a Chromium executable.";
            return;
        }
        // Generous: the page follows the fleet through heartbeats, the dashboard's sampling and its polling, on a busy machine.
        Assertions.SetDefaultExpectTimeout(30_000);
        _playwright = await Playwright.CreateAsync();
        _browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions { ExecutablePath = ExecutablePath, Headless = true });
    }

    /// <summary>A new page (its own cookies) that accepts every confirmation dialog, as an operator clicking OK does.</summary>
    public async Task<IPage> NewPageAsync()
    {
        if (_failure is not null)
            Assert.Fail(_failure);
        var context = await _browser!.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 560 } });
        context.SetDefaultTimeout(30_000);
        var page = await context.NewPageAsync();
        page.Dialog += async (_, dialog) => await dialog.AcceptAsync();
        return page;
    }

    /// <summary>
    /// Writes a PNG of the page to <c>LANEQUEUE_DASHBOARD_SCREENSHOTS/name.png</c> when that folder is set
    /// (<c>scripts/dashboard-screenshots.sh</c> sets it to docs/dashboard).
    /// </summary>
    public static async Task ScreenshotAsync(IPage page, string name)
    {
        if (Environment.GetEnvironmentVariable("LANEQUEUE_DASHBOARD_SCREENSHOTS") is not { Length: > 0 } folder)
            return;
        Directory.CreateDirectory(folder);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(folder, name + ".png"), FullPage = true });
    }

    public async Task DisposeAsync()
    {
        if (_browser is not null)
            await _browser.DisposeAsync();
        _playwright?.Dispose();
    }
}
