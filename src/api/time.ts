import { ApiBadRequestError } from '../errors.js'
import { parseTime } from '../leases/address.js'

/** RFC 3339 with offset, epoch ms, `now`, or `now-15m` / `now-2h` / `now-7d` (see parseTime). */
export function apiTime (value: string, name: string, now = Date.now()): number {
  try {
    return parseTime(value, name, now)
  } catch (err) {
    throw new ApiBadRequestError(`${name}: ${(err as Error).message.replace(/^KEATRAIL_ERR_USAGE: /, '')}`)
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
