// Message rates, two kinds:
//  - RateMeter: the ensemble's true rate to one service, counted from the
//    copies its tap sends us (the provider's process copies every message it
//    delivers to the service, whoever sent it and whichever way it came);
//  - RoutedRates: what this router alone routes to each service, from two
//    /_o2/hub/counts answers. O2 traffic goes from process to process, so
//    this is 0 for most services even when they are busy.

const BUCKET_S = 0.1;

/** Copies counted in 0.1 s buckets; the rate is over the last `windowS` seconds. */
export class RateMeter {
  constructor(now, windowS = 5) {
    this.windowS = windowS;
    this.since = now;     // when the tap was asked for
    this.total = 0;
    this.buckets = new Map(); // bucket index -> count, at most windowS / BUCKET_S + 1 of them
  }

  count(now) {
    this.total++;
    const k = Math.floor(now / BUCKET_S);
    this.buckets.set(k, (this.buckets.get(k) ?? 0) + 1);
    if (this.buckets.size > this.windowS / BUCKET_S + 2) this._prune(now);
  }

  _prune(now) {
    const oldest = Math.floor((now - this.windowS) / BUCKET_S);
    for (const k of this.buckets.keys()) if (k < oldest) this.buckets.delete(k);
  }

  /** Messages per second over the window (or since the tap, if shorter); null in its first second. */
  rate(now) {
    const span = Math.min(this.windowS, now - this.since);
    if (span < 1) return null;
    this._prune(now);
    // Whole buckets only, and the time they cover (a part-counted bucket would bias it).
    const first = Math.floor((now - span) / BUCKET_S) + 1;
    let n = 0;
    for (const [k, c] of this.buckets) if (k >= first) n += c;
    return n / (now - first * BUCKET_S);
  }
}

/** Per-service rates of what this router routes, from successive counts answers. */
export class RoutedRates {
  constructor() {
    this.last = null; // {time, counts}
    this.rates = new Map();
    this.counts = new Map();
    this.routerTime = null; // O2 time of the last answer, or -local time without a clock
  }

  /** One /_o2/hub/counts answer: "t" then ("sh")* (names starting with '#' are the router's counters). */
  answer(args) {
    const time = Number(args[0]);
    const now = Math.abs(time);
    const counts = new Map();
    for (let i = 1; i + 1 < args.length; i += 2)
      if (!String(args[i]).startsWith('#')) counts.set(args[i], Number(args[i + 1]));
    if (this.last && now > this.last.time) {
      const dt = now - this.last.time;
      this.rates = new Map([...counts].map(([name, n]) => [name, Math.max(0, n - (this.last.counts.get(name) ?? n)) / dt]));
    }
    this.counts = counts;
    this.last = { time: now, counts };
    this.routerTime = time;
  }
}

/** A rate for a table cell: 1 decimal below 10, whole numbers above. */
export function formatRate(r) {
  return r < 10 ? r.toFixed(1) : String(Math.round(r));
}
