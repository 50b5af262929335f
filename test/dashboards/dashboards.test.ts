import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { dashboardFiles, DATA_VIEWS } from '../../src/dashboards/keatrail.js'
import { fieldsUsed, toNdjson, type SavedObject } from '../../src/dashboards/saved-objects.js'
import { ElasticsearchStore } from '../../src/store/elasticsearch/store.js'
import { ElasticEngine } from '../../src/store/elasticsearch/engine.js'
import type { KeaSnapshot } from '../../src/kea/snapshot.js'
import { parseBuffer, readFixture, ROOT } from '../helpers/fixtures.js'

// No Kibana runs here: the saved objects are checked statically (parse, references, fields in
// mappings/) and against a real Elasticsearch holding real Kea events, lease intervals and
// snapshots (field_caps), as ../shared/docs/anchors.md describes.

const files = dashboardFiles()
const all = [...files.values()].flat()
const byId = new Map(all.map((o) => [o.id, o]))

type Mapping = Map<string, string>
function flatten (props: Record<string, { type?: string, properties?: Record<string, unknown> }>, prefix = '', out: Mapping = new Map()): Mapping {
  for (const [k, v] of Object.entries(props)) {
    const name = prefix === '' ? k : `${prefix}.${k}`
    if (v.type !== undefined && v.type !== 'object') out.set(name, v.type)
    if (v.properties !== undefined) flatten(v.properties as Record<string, { type?: string }>, name, out)
    const sub = (v as { fields?: Record<string, { type: string }> }).fields
    if (sub !== undefined) for (const [f, d] of Object.entries(sub)) out.set(`${name}.${f}`, d.type)
  }
  return out
}
const mapping = (file: string): Record<string, { type?: string }> => {
  const t = JSON.parse(readFileSync(join(ROOT, 'mappings', file), 'utf8')) as { template: { mappings: { properties: Record<string, { type?: string }> } } }
  return t.template.mappings.properties
}
const STATIC: Record<string, Mapping> = {
  [DATA_VIEWS.events]: flatten({ ...mapping('component-ecs.json'), ...mapping('component-kea.json') } as never),
  [DATA_VIEWS.leases]: flatten(mapping('index-template-leases.json') as never),
  [DATA_VIEWS.snapshots]: flatten(mapping('index-template-snapshots.json') as never)
}

const NUMERIC = new Set(['long', 'integer', 'short', 'byte', 'double', 'float', 'half_float', 'scaled_float'])
function compatible (op: string, type: string): boolean {
  if (op === 'date_histogram') return type === 'date' || type === 'date_nanos'
  if (op === 'terms') return ['keyword', 'ip', 'boolean', 'constant_keyword', ...NUMERIC].includes(type)
  if (op === 'max' || op === 'average') return NUMERIC.has(type)
  if (op === 'last_value') return type !== 'text'
  return true // a saved-search column or a KQL field: present is enough
}

/** Every (data view, field, operation) the objects use, KQL fields included. */
function usages (): Array<{ object: string, view: string, field: string, op: string }> {
  const out: Array<{ object: string, view: string, field: string, op: string }> = []
  for (const o of all) {
    if (o.type !== 'lens' && o.type !== 'search') continue
    const view = o.references.find((r) => r.type === 'index-pattern')?.id as string
    for (const u of fieldsUsed(o)) out.push({ object: o.id, view, ...u })
    const kql = o.type === 'lens'
      ? (o.attributes.state as { query: { query: string } }).query.query
      : (JSON.parse((o.attributes.kibanaSavedObjectMeta as { searchSourceJSON: string }).searchSourceJSON) as { query: { query: string } }).query.query
    for (const m of kql.matchAll(/([A-Za-z_@][\w.@]*)\s*:/g)) out.push({ object: o.id, view, field: m[1] as string, op: 'kql' })
  }
  return out
}

describe('dashboards (static)', () => {
  it('the committed NDJSON is exactly what src/dashboards generates (stable ids, no drift)', () => {
    for (const [file, objects] of files) expect(readFileSync(join(ROOT, 'dashboards', file), 'utf8'), file).toBe(toNdjson(objects))
  })

  it('every line parses to a saved object; ids are unique, stable and keatrail-*', () => {
    let lines = 0
    for (const file of files.keys()) {
      for (const line of readFileSync(join(ROOT, 'dashboards', file), 'utf8').split('\n').filter(Boolean)) {
        const o = JSON.parse(line) as SavedObject
        expect(o).toMatchObject({ id: expect.stringMatching(/^keatrail-[a-z0-9-]+$/), type: expect.any(String), attributes: expect.any(Object), references: expect.any(Array), coreMigrationVersion: expect.any(String) })
        lines++
      }
    }
    expect(lines).toBe(all.length)
    expect(byId.size).toBe(all.length)
    expect(all.filter((o) => o.type === 'dashboard').map((o) => o.id)).toEqual(['keatrail-dashboard-overview', 'keatrail-dashboard-leases', 'keatrail-dashboard-pools'])
  })

  it('every reference resolves; panelsJSON, searchSourceJSON and fieldFormatMap parse', () => {
    for (const o of all) {
      for (const r of o.references) expect(byId.get(r.id)?.type, `${o.id} → ${r.type} ${r.id}`).toBe(r.type)
      if (o.type === 'dashboard') {
        const panels = JSON.parse(o.attributes.panelsJSON as string) as Array<{ panelIndex: string, panelRefName: string, type: string, gridData: { x: number, w: number } }>
        expect(panels.length).toBeGreaterThan(3)
        for (const p of panels) {
          expect(o.references.find((r) => r.name === `${p.panelIndex}:${p.panelRefName}`)?.type, `${o.id} panel ${p.panelIndex}`).toBe(p.type)
          expect(p.gridData.x + p.gridData.w).toBeLessThanOrEqual(48)
        }
        JSON.parse(o.attributes.optionsJSON as string)
      }
      if (o.type === 'lens') {
        const layers = (o.attributes.state as { datasourceStates: { formBased: { layers: Record<string, { columnOrder: string[], columns: Record<string, unknown> }> } } }).datasourceStates.formBased.layers
        for (const [id, l] of Object.entries(layers)) {
          expect(o.references.some((r) => r.name === `indexpattern-datasource-layer-${id}`)).toBe(true)
          expect([...l.columnOrder].sort()).toEqual(Object.keys(l.columns).sort())
        }
      }
      if (o.type === 'search') {
        const src = JSON.parse((o.attributes.kibanaSavedObjectMeta as { searchSourceJSON: string }).searchSourceJSON) as { indexRefName: string }
        expect(o.references.some((r) => r.name === src.indexRefName)).toBe(true)
      }
      if (o.type === 'index-pattern') {
        const formats = JSON.parse(o.attributes.fieldFormatMap as string) as Record<string, unknown>
        for (const f of Object.keys(formats)) expect(STATIC[o.id]?.has(f), `${o.id} format for ${f}`).toBe(true)
      }
    }
  })

  it('every field a panel, search or filter uses is in mappings/ with a compatible type', () => {
    const bad = usages().filter((u) => { const t = STATIC[u.view]?.get(u.field); return t === undefined || !compatible(u.op, t) })
    expect(bad).toEqual([])
    expect(usages().length).toBeGreaterThan(60)
  })
})

const esUrl = inject('esUrl')
const esSkip = esUrl === '' ? inject('esSkipReason') : ''

describe.skipIf(esSkip !== '' && process.env.CI !== 'true')(`dashboards against a real Elasticsearch${esSkip === '' ? '' : ` (skipped: ${esSkip})`}`, () => {
  const ns = `dash${Date.now().toString(36)}`
  let es: ElasticsearchStore
  beforeAll(async () => {
    if (esSkip !== '') throw new Error(`CI needs Elasticsearch: ${esSkip}`)
    es = new ElasticsearchStore({ url: esUrl, namespace: ns, refresh: true })
    await es.ensureTemplates()
    for (const [file, host] of [['captured/kea-dhcp4-INFO-file.log', 'kea-a'], ['captured/kea-dhcp6-INFO-file.log', 'kea-a']] as const) {
      const { events } = await parseBuffer(readFixture(file), { host })
      await es.write(events)
    }
    const snap = (service: 'dhcp4' | 'dhcp6'): KeaSnapshot => ({
      '@timestamp': '2026-11-24T18:05:00.000Z', id: `kea-a|${service}|1`, server: 'kea-a', service, state: 'up', version: '2.2.0',
      ha: [{ mode: 'hot-standby', local_role: 'primary', local_state: 'hot-standby', remote_role: 'standby', remote_state: 'hot-standby', in_touch: true }],
      subnets: [{ id: 1, subnet: '192.0.2.0/24', shared_network: 'lab', total: 20, assigned: 8, declined: 0, free: 12, utilization: 40 }],
      shared_networks: [{ name: 'lab', total: 20, assigned: 8, declined: 0, free: 12, utilization: 40 }],
      totals: { total: 20, assigned: 8, declined: 0, free: 12, utilization: 40 }, packets: { 'pkt4-received': 3 }
    })
    await es.snapshots.write([snap('dhcp4'), snap('dhcp6')])
    await es.refresh()
  }, 120_000)
  afterAll(async () => { await es?.close() })

  it('every field the dashboards use exists in the real indices (field_caps), aggregatable where aggregated', async () => {
    const patterns: Record<string, string> = {
      [DATA_VIEWS.events]: `logs-kea.*-${ns}`,
      [DATA_VIEWS.leases]: `keatrail-leases-${ns}`,
      [DATA_VIEWS.snapshots]: `keatrail-snapshots-${ns}`
    }
    const missing: string[] = []
    for (const [view, index] of Object.entries(patterns)) {
      const used = usages().filter((u) => u.view === view)
      const engine = es.client
      if (!(engine instanceof ElasticEngine)) throw new Error('an Elasticsearch store')
      const caps = await engine.client.fieldCaps({ index, fields: [...new Set(used.map((u) => u.field))] })
      for (const u of used) {
        const entry = caps.fields[u.field]
        const types = entry === undefined ? [] : Object.keys(entry)
        const type = types[0]
        if (type === undefined) { missing.push(`${u.object}: ${u.field} not in ${index}`); continue }
        if (!compatible(u.op, type)) missing.push(`${u.object}: ${u.field} is ${type}, not usable for ${u.op}`)
        const aggregating = ['terms', 'max', 'average', 'date_histogram', 'last_value'].includes(u.op)
        if (aggregating && entry?.[type]?.aggregatable !== true) missing.push(`${u.object}: ${u.field} not aggregatable`)
      }
    }
    expect(missing).toEqual([])
  })
})
