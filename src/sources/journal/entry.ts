/**
 * The bytes of a MESSAGE as `journalctl --output=json` prints it, in any of its shapes:
 * - a string: printable UTF-8 text;
 * - an array of byte numbers: a value that is not printable UTF-8 (binary, other encodings);
 * - an array of values, each a string or an array of byte numbers: MESSAGE occurs more than
 *   once in the entry (a client of the native protocol may send it twice).
 *
 * The values of a repeated MESSAGE are joined with '\n': each stays a line of its own, as if it
 * had been written on its own line, so a Kea header in any of them starts its own record and none
 * is glued onto another's text; nothing of any value is dropped. Undefined for no MESSAGE (or
 * null, what journalctl prints for a value it did not show); another shape is kept as its JSON
 * text rather than lost.
 */
export function messageBytes (value: unknown): Buffer | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value === 'string') return Buffer.from(value, 'utf8')
  if (Array.isArray(value)) {
    const bytes = byteArray(value)
    if (bytes !== undefined) return bytes
    const parts: Buffer[] = []
    for (const v of value as unknown[]) {
      if (v === null) continue
      if (parts.length > 0) parts.push(NEWLINE)
      parts.push(typeof v === 'string' ? Buffer.from(v, 'utf8') : (Array.isArray(v) ? byteArray(v) : undefined) ?? Buffer.from(JSON.stringify(v)))
    }
    return Buffer.concat(parts)
  }
  return Buffer.from(JSON.stringify(value))
}

const NEWLINE = Buffer.from('\n')

/** The bytes of an array of byte numbers, or undefined when it is not one (an array of values). */
function byteArray (value: unknown[]): Buffer | undefined {
  for (const b of value) {
    if (typeof b !== 'number' || !Number.isInteger(b) || b < 0 || b > 255) return undefined
  }
  return Buffer.from(value as number[])
}

/**
 * The fields that can be read from the start of a JSON object whose end was cut off (a
 * journalctl line over the source's bound): each complete field, then what of the cut value
 * is whole: a string up to its last complete character or escape, an array up to its last
 * complete element (a cut string or array inside kept the same way; a cut number, literal or
 * key is left out: "25" may have been "255"). `cut` names the field whose value was cut.
 */
export function readJsonPrefix (text: string): { fields: Record<string, unknown>, cut?: string } {
  const fields: Record<string, unknown> = {}
  let i = skipSpace(text, 0)
  if (text.charCodeAt(i) !== OPEN_BRACE) return { fields }
  i++
  for (;;) {
    i = skipSpace(text, i)
    if (text.charCodeAt(i) !== QUOTE) return { fields }
    const key = readString(text, i)
    if (!key.complete || typeof key.value !== 'string') return { fields }
    i = skipSpace(text, key.end)
    if (text.charCodeAt(i) !== COLON) return { fields }
    const value = readValue(text, skipSpace(text, i + 1))
    if (!value.complete) {
      if (value.value !== undefined) {
        fields[key.value] = value.value
        return { fields, cut: key.value }
      }
      return { fields }
    }
    fields[key.value] = value.value
    i = skipSpace(text, value.end)
    if (text.charCodeAt(i) !== COMMA) return { fields }
    i++
  }
}

const QUOTE = 34
const BACKSLASH = 92
const COMMA = 44
const COLON = 58
const OPEN_BRACE = 123
const OPEN_BRACKET = 91
const CLOSE_BRACKET = 93
const LOWER_U = 117

/** A value read from `start`: complete (ending before `end`), or cut by the end of the text (`value` what of it is whole, if anything). */
interface Read { value: unknown, end: number, complete: boolean }

function skipSpace (s: string, i: number): number {
  while (i < s.length) {
    const c = s.charCodeAt(i)
    if (c !== 32 && c !== 9 && c !== 10 && c !== 13) break
    i++
  }
  return i
}

function readValue (s: string, i: number): Read {
  const c = s.charCodeAt(i)
  if (c === QUOTE) return readString(s, i)
  if (c === OPEN_BRACKET) return readArray(s, i)
  // Numbers and literals: whole only when something follows them.
  const m = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y
  m.lastIndex = i
  const hit = m.exec(s)
  if (hit === null || m.lastIndex >= s.length) return { value: undefined, end: s.length, complete: false }
  return { value: JSON.parse(hit[0]) as unknown, end: m.lastIndex, complete: true }
}

function readString (s: string, start: number): Read {
  let j = start + 1
  while (j < s.length) {
    const c = s.charCodeAt(j)
    if (c === QUOTE) return { value: JSON.parse(s.slice(start, j + 1)) as unknown, end: j + 1, complete: true }
    if (c === BACKSLASH) {
      const len = s.charCodeAt(j + 1) === LOWER_U ? 6 : 2
      // An escape cut in its middle is left out, not misread.
      if (j + len > s.length) break
      j += len
      continue
    }
    j++
  }
  return { value: JSON.parse(s.slice(start, j) + '"') as unknown, end: s.length, complete: false }
}

function readArray (s: string, start: number): Read {
  const out: unknown[] = []
  let i = skipSpace(s, start + 1)
  if (s.charCodeAt(i) === CLOSE_BRACKET) return { value: out, end: i + 1, complete: true }
  for (;;) {
    if (i >= s.length) return { value: out, end: s.length, complete: false }
    const v = readValue(s, i)
    if (!v.complete) {
      if (v.value !== undefined) out.push(v.value)
      return { value: out, end: s.length, complete: false }
    }
    out.push(v.value)
    i = skipSpace(s, v.end)
    const c = s.charCodeAt(i)
    if (c === CLOSE_BRACKET) return { value: out, end: i + 1, complete: true }
    if (c !== COMMA) return { value: out, end: s.length, complete: false }
    i = skipSpace(s, i + 1)
  }
}
