/**
 * How long health() reuses its event count: 10 s, the Docker health check's interval, so that
 * polling /readyz (unauthenticated) costs at most one count per 10 s; 6 addresses × 19 requests/s
 * each counting starved authenticated queries (503 BUSY).
 */
const HEALTH_COUNT_MAX_AGE_MS = 10_000

/** The event count health() reports, read off the caller's thread at most once per 10 s. */
export class HealthCount {
  private lastCount: number | undefined
  /** When lastCount was read (epoch ms), and the count in flight: health runs at most one. */
  private lastCountAt = 0
  private counting: Promise<void> | undefined
  /** Why the last count failed, other than busy readers or its deadline: the store is not ready. */
  private countFailure: string | undefined

  constructor (private readonly count: () => Promise<number>) {}

  health (path: string): { ok: boolean, detail: string } {
    if (this.counting === undefined && Date.now() - this.lastCountAt >= HEALTH_COUNT_MAX_AGE_MS) {
      this.counting = this.count().then((n) => {
        this.lastCount = n
        this.lastCountAt = Date.now()
        this.countFailure = undefined
      }, (err: Error & { code?: string }) => {
        // Readers busy, or the count past its deadline: the last count stays, the next health tries again.
        if (err.code !== 'KEATRAIL_ERR_QUERY_BUSY' && err.code !== 'KEATRAIL_ERR_QUERY_TIMEOUT') this.countFailure = err.message
      }).finally(() => { this.counting = undefined })
    }
    if (this.countFailure !== undefined) return { ok: false, detail: this.countFailure }
    return { ok: true, detail: `${path}: ${this.lastCount ?? '?'} events` }
  }
}
