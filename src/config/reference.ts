import { z } from 'zod'
import { configSchema } from './config.js'

// docs/CONFIG.md is rendered from the composed config schema, so the reference cannot say
// something the validator does not do: the field list, types, bounds and defaults come from zod,
// the prose from each field's `.describe()`. zod's own JSON Schema export does the walking (it
// already resolves defaults, prefaults, optionals and discriminated unions).

/** The JSON Schema subset that z.toJSONSchema() emits for keatrail's config. */
interface JsonSchema {
  type?: string | string[]
  description?: string
  default?: unknown
  const?: unknown
  enum?: unknown[]
  format?: string
  pattern?: string
  minimum?: number
  maximum?: number
  exclusiveMinimum?: number
  minLength?: number
  minItems?: number
  properties?: Record<string, JsonSchema>
  required?: string[]
  additionalProperties?: JsonSchema | boolean
  items?: JsonSchema
  oneOf?: JsonSchema[]
  anyOf?: JsonSchema[]
}

/** One documented field: the path as written in keatrail.yaml (`sources[]` for a list's items). */
export interface ConfigField {
  path: string
  type: string
  required: boolean
  default?: unknown
  description?: string
}

/** A part of the reference: the top-level fields, or one kind of store or source. */
export interface ConfigSection {
  title: string
  /** The discriminating `type:` of a store or source kind. */
  kind?: string
  fields: ConfigField[]
}

export function configJsonSchema (): JsonSchema {
  return z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema
}

// Bounds zod adds for .int() that say nothing to a reader.
const SAFE = Number.MAX_SAFE_INTEGER

function typeOf (s: JsonSchema): string {
  if (s.const !== undefined) return JSON.stringify(s.const)
  if (s.enum !== undefined) return s.enum.map((v) => JSON.stringify(v)).join(' | ')
  if (s.oneOf !== undefined || s.anyOf !== undefined) return 'one of the kinds below'
  const t = Array.isArray(s.type) ? s.type.join(' | ') : (s.type ?? 'any')
  if (t === 'array') return `list of ${s.items === undefined ? 'any' : typeOf(s.items)}`
  if (t === 'object' && s.properties === undefined && typeof s.additionalProperties === 'object') {
    return `map of ${typeOf(s.additionalProperties)}`
  }
  const bounds: string[] = []
  if (s.minimum !== undefined && s.maximum !== undefined && s.maximum < SAFE) bounds.push(`${s.minimum}–${s.maximum}`)
  else {
    if (s.minimum !== undefined && s.minimum > -SAFE) bounds.push(`≥ ${s.minimum}`)
    if (s.maximum !== undefined && s.maximum < SAFE) bounds.push(`≤ ${s.maximum}`)
  }
  if (s.exclusiveMinimum !== undefined) bounds.push(`> ${s.exclusiveMinimum}`)
  if (s.format !== undefined) bounds.push(s.format === 'uri' ? 'URL' : s.format)
  if (s.pattern !== undefined) bounds.push(`matching \`${s.pattern}\``)
  if (s.minLength !== undefined && s.minLength > 0) bounds.push('not empty')
  if (s.minItems !== undefined && s.minItems > 0) bounds.push(`at least ${s.minItems}`)
  return bounds.length === 0 ? t : `${t} (${bounds.join(', ')})`
}

/** The kinds of a discriminated union (`type: sqlite`…), or none. */
function kindsOf (s: JsonSchema): Array<{ kind: string, schema: JsonSchema }> | undefined {
  const alts = s.oneOf ?? s.anyOf
  if (alts === undefined) return undefined
  return alts.map((a) => ({ kind: String(a.properties?.type?.const ?? '?'), schema: a }))
}

/**
 * The fields of `s` (an object) under `prefix`, depth first; objects nested in objects are
 * listed with their own row (their description) and then their fields. Discriminated unions
 * become sections of their own (`unions`).
 */
function walk (s: JsonSchema, prefix: string, fields: ConfigField[], unions: Array<{ path: string, schema: JsonSchema }>): void {
  const required = new Set(s.required ?? [])
  // A kind's `type:` first: it says which of the kinds the rest belongs to.
  const entries = Object.entries(s.properties ?? {}).sort(([a], [b]) => Number(b === 'type') - Number(a === 'type'))
  for (const [name, f] of entries) {
    const path = prefix === '' ? name : `${prefix}.${name}`
    fields.push({
      path,
      type: typeOf(f),
      required: required.has(name) && f.default === undefined,
      ...(f.default === undefined ? {} : { default: f.default }),
      ...(f.description === undefined ? {} : { description: f.description })
    })
    if (f.properties !== undefined) walk(f, path, fields, unions)
    else if (kindsOf(f) !== undefined) unions.push({ path, schema: f })
    else if (f.type === 'array' && f.items !== undefined) {
      if (f.items.properties !== undefined) walk(f.items, `${path}[]`, fields, unions)
      else if (kindsOf(f.items) !== undefined) unions.push({ path: `${path}[]`, schema: f.items })
    }
  }
}

/** The reference's sections: the config's fields, then each kind of each union (store, sources). */
export function configSections (schema: JsonSchema = configJsonSchema()): ConfigSection[] {
  const sections: ConfigSection[] = []
  const pending: Array<{ path: string, schema: JsonSchema }> = []
  const top: ConfigField[] = []
  walk(schema, '', top, pending)
  sections.push({ title: 'keatrail.yaml', fields: top })
  while (pending.length > 0) {
    const u = pending.shift() as { path: string, schema: JsonSchema }
    for (const { kind, schema: alt } of kindsOf(u.schema) ?? []) {
      const fields: ConfigField[] = []
      walk(alt, u.path, fields, pending)
      sections.push({ title: `${u.path} with type: ${kind}`, kind, fields })
    }
  }
  return sections
}

/** Every field, in every section (for checks such as "each field is described"). */
export function configFields (): ConfigField[] {
  return configSections().flatMap((s) => s.fields)
}

// Table cells: a pipe ends the cell and `<dataDir>` would be read as an HTML tag.
const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\n/g, ' ')

function defaultOf (f: ConfigField): string {
  if (f.required) return 'required'
  if (f.default === undefined) return ''
  // An object's default is its fields' defaults, listed on their own rows.
  if (typeof f.default === 'object' && f.default !== null && !Array.isArray(f.default)) return ''
  return `\`${cell(JSON.stringify(f.default))}\``
}

/** docs/CONFIG.md. */
export function renderConfigReference (): string {
  const lines = [
    '# keatrail.yaml reference',
    '',
    '<!-- Generated by `npm run docs:config` from the config schema (src/config/config.ts and the',
    '     components\' schemas it is composed of). Do not edit: change the `.describe()` texts. -->',
    '',
    'Every field of `keatrail.yaml`, as `keatrail config check FILE` and every command\'s `--config` validate it.',
    'A field not given takes its default; an unknown field is an error. Command-line flags override the file',
    '(`--data-dir`, `--store`, `--es-url`, `--es-namespace`, `--log-level`, the API\'s `--host`/`--port`);',
    'Elasticsearch credentials may come from `KEATRAIL_ES_USERNAME`, `KEATRAIL_ES_PASSWORD`, `KEATRAIL_ES_API_KEY`',
    'and its URL from `KEATRAIL_ES_URL`.',
    ''
  ]
  for (const s of configSections()) {
    lines.push(`## ${s.title}`, '')
    lines.push('| Field | Type | Default | Description |', '| --- | --- | --- | --- |')
    for (const f of s.fields) {
      lines.push(`| \`${f.path}\` | ${cell(f.type)} | ${defaultOf(f)} | ${cell(f.description ?? '')} |`)
    }
    lines.push('')
  }
  return lines.join('\n')
}
