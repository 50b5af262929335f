import { ApiBadRequestError } from '../errors.js'
import { parseTime } from '../leases/address.js'

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }

/** RFC 3339 with offset, epoch ms, `now`, or `now-15m` / `now-2h` / `now-7d`. */
export function apiTime (value: string, name: string, now = Date.now()): number {
  const rel = /^now(?:([-+])(\d{1,6})([smhdw]))?$/.exec(value.trim())
  if (rel !== null) {
    if (rel[1] === undefined) return now
    const delta = Number(rel[2]) * (UNITS[rel[3] as string] as number)
    return rel[1] === '-' ? now - delta : now + delta
  }
  try {
    return parseTime(value, name)
  } catch (err) {
    throw new ApiBadRequestError(`${name}: ${(err as Error).message.replace(/^KEATRAIL_ERR_USAGE: /, '')} (or now, now-15m, now-24h, now-7d)`)
  }
}

/** A from/to pair: from before to, from not in the future. */
export function apiRange (from: string | undefined, to: string | undefined, now = Date.now()): { from?: number, to?: number } {
  const f = from === undefined ? undefined : apiTime(from, 'from', now)
  const t = to === undefined ? undefined : apiTime(to, 'to', now)
  if (f !== undefined && f > now + 60_000) throw new ApiBadRequestError(`from ${new Date(f).toISOString()} is in the future`)
  if (f !== undefined && t !== undefined && f >= t) throw new ApiBadRequestError('from must be before to')
  return { ...(f === undefined ? {} : { from: f }), ...(t === undefined ? {} : { to: t }) }
}
