/**
 * Client identifiers (hardware address, client id, DUID) as lease_log stores them: the bytes of
 * lowercase colon hex ("1a:1b:1c:1d:1e:3f": 17 characters) as a BLOB (6 bytes), in the row and
 * in its identifier index — ~6 bytes an event of the lease history's ~39 (bench:store's dbstat).
 * Anything else stays TEXT, as do the rows written before (schema 12): a lookup asks for both
 * forms (identForms), and reads turn a BLOB back into its text (identText, a SQL function).
 */
const COLON_HEX = /^[0-9a-f]{2}(?::[0-9a-f]{2})*$/

/** What lease_log stores for identifier `text`: its bytes when it is lowercase colon hex, else the text. */
export function identBlob (text: string | null | undefined): Buffer | string | null {
  if (text === undefined || text === null) return null
  if (!COLON_HEX.test(text)) return text
  return Buffer.from(text.replaceAll(':', ''), 'hex')
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
