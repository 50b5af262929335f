import { KibanaError } from '../errors.js'

/** The oldest Kibana the dashboards import into (Lens formBased state, typeMigrationVersion 8.9.0). */
export const MIN_KIBANA = '8.9.0'

export interface KibanaOptions {
  url: string
  space?: string
  username?: string
  password?: string
  apiKey?: string
  timeoutMs?: number
}

export interface ImportResult { file: string, imported: number }

function headers (o: KibanaOptions): Record<string, string> {
  const h: Record<string, string> = { 'kbn-xsrf': 'keatrail' }
  if (o.apiKey !== undefined) h.authorization = `ApiKey ${o.apiKey}`
  else if (o.username !== undefined) h.authorization = `Basic ${Buffer.from(`${o.username}:${o.password ?? ''}`).toString('base64')}`
  return h
}

function base (o: KibanaOptions): string {
  const url = o.url.replace(/\/+$/, '')
  return o.space === undefined || o.space === 'default' ? url : `${url}/s/${encodeURIComponent(o.space)}`
}

function newer (a: string, b: string): boolean {
  const pa = a.split(/[.-]/).map(Number)
  const pb = b.split(/[.-]/).map(Number)
  for (let i = 0; i < 3; i++) {
    if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) > (pb[i] ?? 0)
  }
  return true
}

async function call (o: KibanaOptions, path: string, init: RequestInit): Promise<Response> {
  let res: Response
  try {
    res = await fetch(`${path.startsWith('/api/status') ? o.url.replace(/\/+$/, '') : base(o)}${path}`, { ...init, signal: AbortSignal.timeout(o.timeoutMs ?? 30_000) })
  } catch (err) {
    throw new KibanaError(o.url, `not reachable: ${(err as Error).message}`)
  }
  if (res.status === 401 || res.status === 403) throw new KibanaError(o.url, `HTTP ${res.status}: check the credentials (KEATRAIL_KIBANA_USERNAME/PASSWORD or KEATRAIL_KIBANA_API_KEY) and their privileges on saved objects`)
  if (res.status === 404 && path.includes('_import')) throw new KibanaError(o.url, `HTTP 404: no space ${JSON.stringify(o.space ?? 'default')}?`)
  return res
}

/** Kibana's version; refuses one older than the dashboards. */
export async function kibanaVersion (o: KibanaOptions): Promise<string> {
  const res = await call(o, '/api/status', { headers: headers(o) })
  if (!res.ok) throw new KibanaError(o.url, `status answered HTTP ${res.status}`)
  const body = await res.json().catch(() => ({})) as { version?: { number?: string } }
  const v = body.version?.number
  if (v === undefined) throw new KibanaError(o.url, 'status has no version.number: is this Kibana?')
  if (!newer(v, MIN_KIBANA)) throw new KibanaError(o.url, `version ${v} is older than ${MIN_KIBANA}, which the dashboards need (saved objects import only into the same or a newer Kibana)`)
  return v
}

interface ImportBody {
  success?: boolean
  successCount?: number
  errors?: Array<{ id?: string, type?: string, title?: string, error?: { type?: string, message?: string, references?: Array<{ type: string, id: string }> } }>
  message?: string
}

/**
 * POST /api/saved_objects/_import?overwrite=true with the NDJSON as multipart `file`. Kibana
 * answers 200 even when objects failed: `success` and `errors` in the body decide.
 */
export async function importSavedObjects (o: KibanaOptions, file: string, ndjson: string): Promise<ImportResult> {
  const form = new FormData()
  form.append('file', new Blob([ndjson], { type: 'application/ndjson' }), file)
  const res = await call(o, '/api/saved_objects/_import?overwrite=true', { method: 'POST', headers: headers(o), body: form })
  const body = await res.json().catch(() => ({})) as ImportBody
  if (!res.ok) throw new KibanaError(o.url, `importing ${file}: HTTP ${res.status} ${body.message ?? ''}`.trim())
  if (body.success !== true) {
    const errors = (body.errors ?? []).map((e) => {
      const refs = (e.error?.references ?? []).map((r) => `${r.type} ${r.id}`).join(', ')
      return `${e.type ?? '?'} ${e.id ?? '?'}: ${e.error?.type ?? 'error'}${e.error?.message === undefined ? '' : ` (${e.error.message})`}${refs === '' ? '' : ` missing ${refs}`}`
    })
    throw new KibanaError(o.url, `importing ${file} failed for ${errors.length} object(s): ${errors.join('; ') || 'no details'}`)
  }
  return { file, imported: body.successCount ?? 0 }
}
