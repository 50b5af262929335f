import { TimezoneInvalidError } from '../../errors.js'

/**
 * Turns local wall-clock times into UTC instants for one IANA zone.
 *
 * NOTE: Kea's default `%D` writes local time with no offset, so the same text can name two
 * instants (the repeated hour when DST ends) or none (the skipped hour when it starts).
 * The rule, stated in docs/ARCHITECTURE.md:
 * - a skipped local time is moved forward by the length of the gap (Temporal "compatible");
 * - a repeated local time resolves to the earlier instant, unless that would move this
 *   stream's clock back by more than `foldToleranceMs` — Kea writes records in time order,
 *   so a step back inside the repeated hour means the clock has already gone back.
 * A resolver therefore belongs to one stream (one file, one syslog sender).
 */
export class LocalTimeResolver {
  readonly zone: string
  private readonly fmt: Intl.DateTimeFormat | undefined
  // Offsets only change at transitions; 15-minute buckets cover every zone's transition times.
  private readonly cache = new Map<number, readonly number[]>()
  private lastUtc = Number.NEGATIVE_INFINITY
  private readonly foldToleranceMs: number

  constructor (zone: string, foldToleranceMs = 60_000) {
    this.zone = zone
    this.foldToleranceMs = foldToleranceMs
    if (zone === 'UTC' || zone === 'Etc/UTC') {
      this.fmt = undefined
    } else {
      try {
        this.fmt = new Intl.DateTimeFormat('en-US', {
          timeZone: zone,
          hourCycle: 'h23',
          year: 'numeric',
          month: 'numeric',
          day: 'numeric',
          hour: 'numeric',
          minute: 'numeric',
          second: 'numeric'
        })
      } catch {
        throw new TimezoneInvalidError(JSON.stringify(zone))
      }
    }
  }

  /** Offset (local − UTC, in ms) in force at a UTC instant. */
  offsetAt (utcMs: number): number {
    if (this.fmt === undefined) return 0
    const parts = this.fmt.formatToParts(new Date(Math.floor(utcMs / 1000) * 1000))
    const get = (type: string): number => Number(parts.find((p) => p.type === type)?.value)
    const asUtc = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'))
    return asUtc - Math.floor(utcMs / 1000) * 1000
  }

  /**
   * Offsets that map a local time to a real instant, earlier instant first: one normally, two
   * in a fold. In a gap none is valid, and the offset in force before the gap is returned,
   * which moves the time forward by the gap's length.
   */
  private candidates (localMs: number): readonly number[] {
    const key = Math.floor(localMs / 900_000)
    let found = this.cache.get(key)
    if (found === undefined) {
      const before = this.offsetAt(localMs - 86_400_000)
      const after = this.offsetAt(localMs + 86_400_000)
      const valid = (before === after ? [before] : [before, after])
        .filter((off) => this.offsetAt(localMs - off) === off)
        .sort((a, b) => b - a)
      found = valid.length > 0 ? valid : [before]
      if (this.cache.size > 50_000) this.cache.clear()
      this.cache.set(key, found)
    }
    return found
  }

  /** Resolve a local wall-clock time (expressed as if it were UTC) to a UTC instant. */
  resolve (localMs: number): number {
    if (this.fmt === undefined) return localMs
    const c = this.candidates(localMs)
    let utc = localMs - (c[0] as number)
    if (c.length > 1 && utc < this.lastUtc - this.foldToleranceMs) utc = localMs - (c[1] as number)
    if (utc > this.lastUtc) this.lastUtc = utc
    return utc
  }
}

export function systemTimeZone (): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'
}
