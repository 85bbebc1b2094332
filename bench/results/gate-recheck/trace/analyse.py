"""For each generate start inside a consumer's run of query arrivals (gate on: the trace has the monitor's ready age),
print the consumer's silence before it and when its next query delivery was read. Usage: python3 analyse.py trace-*.log"""
import sys


def ms(stamp):
    h, m, s = stamp.split(':')
    return (int(h) * 3600 + int(m) * 60 + float(s)) * 1000


for path in sys.argv[1:]:
    events = [(ms(line.split()[0]), line.rstrip()) for line in open(path)]
    arrivals = [at for at, line in events if 'arrive Query' in line]
    runs = []  # query arrivals less than 500 ms apart: one burst at this consumer
    for at in arrivals:
        if runs and at - runs[-1][1] < 500:
            runs[-1][1] = at
        else:
            runs.append([at, at])
    for first, last in runs:
        for k, (at, line) in enumerate(events):
            if 'start Generate' not in line or not first < at < last or 'age=-1' in line:
                continue  # age=-1: gate off (no monitor)
            before = [t for t, _ in events[:k] if at - 40 <= t <= at]
            silence = max((b - a for a, b in zip(before, before[1:])), default=0)
            nxt = next((t for t, l in events[k:] if 'arrive Query' in l), None)
            state = line.split('query')[1]
            read = f"+{nxt - at:.1f} ms" if nxt is not None else "never"
            print(f"{path.split('/')[-1]} {line.split()[0]} query lane {state}: longest silence in the 40 ms before "
                  f"{silence:.1f} ms; next query delivery read {read}")
