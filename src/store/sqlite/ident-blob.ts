/**
 * Client identifiers (hardware address, client id, DUID) as lease_log stores them: the bytes of
 * lowercase colon hex ("1a:1b:1c:1d:1e:3f": 17 characters) as a BLOB (6 bytes), in the row and
 * in its identifier index — ~6 bytes an event of the lease history's ~39 (bench:store's dbstat).
 * Anything else stays TEXT, as do the rows written before (schema 12): a lookup asks for both
 * forms (identForms), and reads turn a BLOB back into its text (identText, a SQL function).
 */
/** A lowercase hex digit's value, or -1. */
function lowerHex (c: number): number {
  return c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1
}

/**
 * Writes the bytes of lowercase colon hex `s` (`1a:1b:…`, /^[0-9a-f]{2}(?::[0-9a-f]{2})*$/) into
 * `out` from `at`, which must have room for (s.length + 1) / 3 of them; returns how many, or -1
 * when `s` is not that form (some of `out` may be written then). One pass, no strings: a regex
 * test and `replaceAll(':', '')` per identifier were ~4 % of a write's garbage (bench/e2e
 * E2E_ALLOC_PROF), once per lease event for the row and once for its observation.
 */
export function writeColonHex (s: string, out: Uint8Array, at: number): number {
  const n = (s.length + 1) / 3
  if (!Number.isInteger(n) || n < 1) return -1
  for (let i = 0; i < n; i++) {
    const p = i * 3
    if (i > 0 && s.charCodeAt(p - 1) !== 58) return -1
    const hi = lowerHex(s.charCodeAt(p))
    const lo = lowerHex(s.charCodeAt(p + 1))
    if (hi < 0 || lo < 0) return -1
    out[at + i] = hi * 16 + lo
  }
  return n
}

/** What lease_log stores for identifier `text`: its bytes when it is lowercase colon hex, else the text. */
export function identBlob (text: string | null | undefined): Buffer | string | null {
  if (text === undefined || text === null) return null
  const n = (text.length + 1) / 3
  if (!Number.isInteger(n) || n < 1) return text
  const bytes = Buffer.allocUnsafe(n)
  return writeColonHex(text, bytes, 0) < 0 ? text : bytes
}

/** The identifier's text from what lease_log holds (identBlob's inverse; a TEXT value as it is). */
export function identText (stored: unknown): string | null {
  if (stored === null || stored === undefined) return null
  if (typeof stored === 'string') return stored
  if (stored instanceof Uint8Array) {
    let out = ''
    for (let i = 0; i < stored.length; i++) out += (i === 0 ? '' : ':') + (stored[i] as number).toString(16).padStart(2, '0')
    return out
  }
  return String(stored)
}

/** The stored forms a lookup of identifier `text` must match: the text (older rows) and, for colon hex, its BLOB. */
export function identForms (text: string): Array<string | Buffer> {
  const blob = identBlob(text)
  return blob instanceof Buffer ? [text, blob] : [text]
}
