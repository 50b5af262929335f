/** RFC 3339 UTC text (as keatrail writes @timestamp, up to microseconds) → microseconds since the epoch. */
export function isoToMicros (iso: string): number {
  const ms = Date.parse(iso)
  if (Number.isNaN(ms)) throw new RangeError(`not a timestamp: ${iso}`)
  const dot = iso.indexOf('.')
  let micros = 0
  if (dot >= 0) {
    let end = dot + 1
    while (end < iso.length && iso.charCodeAt(end) >= 48 && iso.charCodeAt(end) <= 57) end++
    const frac = iso.slice(dot + 1, end)
    if (frac.length > 3) micros = Number(frac.slice(3, 6).padEnd(3, '0'))
  }
  return ms * 1000 + micros
}

/** Microseconds since the epoch → RFC 3339 UTC text: milliseconds, or microseconds when they are not whole (isoToMicros' inverse). */
export function microsToIso (us: number): string {
  const ms = Math.floor(us / 1000)
  const iso = new Date(ms).toISOString()
  const rest = Math.round(us - ms * 1000)
  return rest === 0 ? iso : `${iso.slice(0, -1)}${String(rest).padStart(3, '0')}Z`
}
