/**
 * RFC 3339 UTC text for an epoch-ms instant, as Date#toISOString gives it.
 *
 * NOTE: Date#toISOString costs ~700 ns a call on Node 20 (bench/parse profile: a third of
 * the parse time). Records of one stream share their second, so the text up to the second is
 * cached and only the milliseconds are appended: ~20 ns. One formatter per stream.
 */
export class IsoFormatter {
  private second = Number.NaN
  private prefix = ''

  format (ms: number, micros = 0): string {
    const s = Math.floor(ms / 1000)
    if (s !== this.second) {
      const d = new Date(s * 1000)
      if (Number.isNaN(d.getTime())) return new Date(ms).toISOString() // throws RangeError like the original
      this.second = s
      this.prefix = d.toISOString().slice(0, -4) // "YYYY-MM-DDTHH:MM:SS."
    }
    const frac = ms - s * 1000
    const msText = frac < 10 ? '00' + frac : frac < 100 ? '0' + frac : String(frac)
    if (micros > 0) return this.prefix + msText + (micros < 10 ? '00' + micros : micros < 100 ? '0' + micros : String(micros)) + 'Z'
    return this.prefix + msText + 'Z'
  }
}

/**
 * The latest instant an event may carry: 2099-12-31T23:59:59.999Z. The SQLite store writes block
 * times as zigzag deltas of µs in doubles, exact while a step is below 2^52 µs (year 2112): a
 * syslog header saying `+275760-09-13T00:00:00Z` (Date.parse reads it) made every later write of
 * its source fail and every full scan answer 503, and one saying 2300 made the events after it
 * read back with wrong times. No Kea server logs past 2099 on purpose.
 */
const EVENT_TIME_MAX_MS = 4102444799999

/** Whether epoch ms `t` can be an event's time: 1970 to the end of 2099. */
export function isEventTime (t: number): boolean {
  return t >= 0 && t <= EVENT_TIME_MAX_MS
}

/** The whole second read last (`YYYY-MM-DDTHH:MM:SS`) and its epoch ms. */
let lastSecond = '1970-01-01T00:00:00'
let lastSecondMs = 0
/** readIso's result: epoch ms (NaN when not a timestamp) and the microseconds past them. */
let readMs = 0
let readUs = 0

/**
 * `YYYY-MM-DDTHH:MM:SS` at the start of `s`: the separators in place (Date.parse checks the
 * digits), and not hour 24, which Date.parse reads as the next day's midnight only when nothing
 * follows the seconds (`T24:00:00.5Z` is NaN): such text is Date.parse's to decide.
 */
function secondShape (s: string): boolean {
  return s.charCodeAt(4) === 45 && s.charCodeAt(7) === 45 && s.charCodeAt(10) === 84 && s.charCodeAt(13) === 58 && s.charCodeAt(16) === 58 &&
    !(s.charCodeAt(11) === 50 && s.charCodeAt(12) === 52)
}

/**
 * Reads RFC 3339 UTC text into readMs (as Date.parse reads it; NaN when it is not a timestamp)
 * and readUs (the 4th–6th fraction digits).
 *
 * NOTE: a stored event's time is read three times on the write path (block times, lease
 * observation, coverage) and once per event a query evaluates; Date.parse cost ~6 % of a
 * bench/e2e write's CPU. Events of one stream share their second, so the text up to the second
 * is compared with the last one read, and only the fraction is parsed.
 */
function readIso (iso: string): void {
  const n = iso.length
  // n === 21 ("…SS.Z") is not a timestamp and n > 30 is beyond nanoseconds: Date.parse decides.
  if (n >= 20 && n !== 21 && n <= 30 && iso.charCodeAt(n - 1) === 90 && (n === 20 || iso.charCodeAt(19) === 46)) {
    if (!iso.startsWith(lastSecond)) {
      if (!secondShape(iso)) { slowReadIso(iso); return }
      const ms = Date.parse(iso.slice(0, 19) + 'Z')
      if (Number.isNaN(ms)) { readMs = Number.NaN; readUs = 0; return }
      lastSecond = iso.slice(0, 19)
      lastSecondMs = ms
    }
    let ms = 0
    let us = 0
    for (let i = 20; i < n - 1; i++) {
      const d = iso.charCodeAt(i) - 48
      if (d < 0 || d > 9) { slowReadIso(iso); return }
      if (i < 23) ms = ms * 10 + d
      else if (i < 26) us = us * 10 + d
    }
    const digits = n === 20 ? 0 : n - 21
    if (digits > 0 && digits < 3) ms *= digits === 1 ? 100 : 10
    if (digits > 3 && digits < 6) us *= digits === 4 ? 100 : 10
    readMs = lastSecondMs + ms
    readUs = us
    return
  }
  slowReadIso(iso)
}

/** readIso for any text Date.parse reads (offsets, other forms). */
function slowReadIso (iso: string): void {
  readMs = Date.parse(iso)
  readUs = 0
  if (Number.isNaN(readMs)) return
  const dot = iso.indexOf('.')
  if (dot >= 0) {
    let end = dot + 1
    while (end < iso.length && iso.charCodeAt(end) >= 48 && iso.charCodeAt(end) <= 57) end++
    const frac = iso.slice(dot + 1, end)
    if (frac.length > 3) readUs = Number(frac.slice(3, 6).padEnd(3, '0'))
  }
}

/** RFC 3339 UTC text → microseconds since the epoch (NaN when it is not a timestamp). */
export function isoMicros (iso: string): number {
  readIso(iso)
  return readMs * 1000 + readUs
}

/** RFC 3339 text → milliseconds since the epoch, exactly as Date.parse gives them (NaN when not a timestamp). */
export function isoMillis (iso: string): number {
  readIso(iso)
  return readMs
}
