import { isoMicros } from '../parse/time/iso.js'

/** RFC 3339 UTC text (as keatrail writes @timestamp, up to microseconds) → microseconds since the epoch; throws when it is not a timestamp. */
export function isoToMicros (iso: string): number {
  const us = isoMicros(iso)
  if (Number.isNaN(us)) throw new RangeError(`not a timestamp: ${iso}`)
  return us
}

/** Microseconds since the epoch → RFC 3339 UTC text: milliseconds, or microseconds when they are not whole (isoToMicros' inverse). */
export function microsToIso (us: number): string {
  const ms = Math.floor(us / 1000)
  const iso = new Date(ms).toISOString()
  const rest = Math.round(us - ms * 1000)
  return rest === 0 ? iso : `${iso.slice(0, -1)}${String(rest).padStart(3, '0')}Z`
}
