/**
 * Typed builders for Kibana 8.x saved objects (data views, Lens visualizations by reference,
 * saved searches, dashboards) and their NDJSON form. The builders record which fields each
 * object uses, so tests can check them against mappings/ and a real cluster's field_caps.
 */

export interface Reference { type: string, id: string, name: string }

export interface SavedObject {
  id: string
  type: 'index-pattern' | 'lens' | 'search' | 'dashboard'
  attributes: Record<string, unknown>
  references: Reference[]
  coreMigrationVersion: string
  typeMigrationVersion: string
}

/** Kibana versions these objects are written for: they import into this or any newer 8.x/9.x. */
export const CORE_MIGRATION_VERSION = '8.8.0'
const TYPE_VERSIONS: Record<SavedObject['type'], string> = {
  'index-pattern': '8.0.0',
  lens: '8.9.0',
  search: '8.0.0',
  dashboard: '8.9.0'
}

function object (id: string, type: SavedObject['type'], attributes: Record<string, unknown>, references: Reference[] = []): SavedObject {
  return { id, type, attributes, references, coreMigrationVersion: CORE_MIGRATION_VERSION, typeMigrationVersion: TYPE_VERSIONS[type] }
}

export interface DataView { id: string, title: string, name: string, fieldFormats?: Record<string, { id: string, params?: Record<string, unknown> }> }

export function dataView (v: DataView): SavedObject {
  return object(v.id, 'index-pattern', {
    title: v.title,
    name: v.name,
    timeFieldName: '@timestamp',
    fieldFormatMap: JSON.stringify(v.fieldFormats ?? {}),
    allowNoIndex: true
  })
}

// --- Lens ---------------------------------------------------------------------------------

/** A Lens column; `field` is undefined for count of records. */
export type Column =
  | { kind: 'date', field: string, label?: string }
  | { kind: 'terms', field: string, size: number, label?: string, orderBy?: string }
  | { kind: 'count', label?: string }
  | { kind: 'max' | 'average', field: string, label?: string }
  | { kind: 'last_value', field: string, label?: string, number?: boolean }

function lensColumn (c: Column): Record<string, unknown> {
  const label = c.label ?? (c.kind === 'count' ? 'Count of records' : c.field)
  const common = { label, customLabel: c.label !== undefined }
  switch (c.kind) {
    case 'date':
      return { ...common, dataType: 'date', isBucketed: true, operationType: 'date_histogram', params: { interval: 'auto', includeEmptyRows: true }, scale: 'interval', sourceField: c.field }
    case 'terms':
      return {
        ...common, dataType: 'string', isBucketed: true, operationType: 'terms', scale: 'ordinal', sourceField: c.field,
        params: { size: c.size, orderBy: c.orderBy === undefined ? { type: 'alphabetical' } : { type: 'column', columnId: c.orderBy }, orderDirection: c.orderBy === undefined ? 'asc' : 'desc', otherBucket: true, missingBucket: false }
      }
    case 'count':
      return { ...common, dataType: 'number', isBucketed: false, operationType: 'count', scale: 'ratio', sourceField: '___records___', params: { emptyAsNull: true } }
    case 'last_value':
      return { ...common, dataType: c.number === true ? 'number' : 'string', isBucketed: false, operationType: 'last_value', scale: c.number === true ? 'ratio' : 'ordinal', sourceField: c.field, params: { sortField: '@timestamp' } }
    default:
      return { ...common, dataType: 'number', isBucketed: false, operationType: c.kind, scale: 'ratio', sourceField: c.field, params: { emptyAsNull: true } }
  }
}

export interface LensSpec {
  id: string
  title: string
  dataView: string
  /** KQL applied to the panel. */
  query?: string
  columns: Record<string, Column>
  vis:
  | { type: 'xy', series: 'bar_stacked' | 'line' | 'bar_horizontal' | 'area', x: string, y: string[], split?: string }
  | { type: 'table', columns: string[] }
  | { type: 'metric', value: string }
}

const LAYER = 'layer1'

export function lens (s: LensSpec): SavedObject {
  const order = Object.keys(s.columns)
  // Lens wants bucket columns first.
  order.sort((a, b) => Number(!(lensColumn(s.columns[b] as Column).isBucketed as boolean)) - Number(!(lensColumn(s.columns[a] as Column).isBucketed as boolean)))
  const columns = Object.fromEntries(Object.entries(s.columns).map(([k, c]) => [k, lensColumn(c)]))
  let visualization: Record<string, unknown>
  let visualizationType: string
  if (s.vis.type === 'xy') {
    visualizationType = 'lnsXY'
    visualization = {
      legend: { isVisible: true, position: 'right' },
      valueLabels: 'hide',
      preferredSeriesType: s.vis.series,
      layers: [{ layerId: LAYER, layerType: 'data', seriesType: s.vis.series, xAccessor: s.vis.x, accessors: s.vis.y, ...(s.vis.split === undefined ? {} : { splitAccessor: s.vis.split }) }]
    }
  } else if (s.vis.type === 'table') {
    visualizationType = 'lnsDatatable'
    visualization = { layerId: LAYER, layerType: 'data', columns: s.vis.columns.map((columnId) => ({ columnId })) }
  } else {
    visualizationType = 'lnsMetric'
    visualization = { layerId: LAYER, layerType: 'data', metricAccessor: s.vis.value }
  }
  return object(s.id, 'lens', {
    title: s.title,
    description: '',
    visualizationType,
    state: {
      datasourceStates: { formBased: { layers: { [LAYER]: { columns, columnOrder: order, incompleteColumns: {} } } } },
      visualization,
      query: { language: 'kuery', query: s.query ?? '' },
      filters: [],
      adHocDataViews: {},
      internalReferences: []
    }
  }, [
    { type: 'index-pattern', id: s.dataView, name: 'indexpattern-datasource-current-indexpattern' },
    { type: 'index-pattern', id: s.dataView, name: `indexpattern-datasource-layer-${LAYER}` }
  ])
}

export interface SearchSpec { id: string, title: string, dataView: string, query: string, columns: string[] }

export function search (s: SearchSpec): SavedObject {
  return object(s.id, 'search', {
    title: s.title,
    description: '',
    columns: s.columns,
    sort: [['@timestamp', 'desc']],
    kibanaSavedObjectMeta: {
      searchSourceJSON: JSON.stringify({ query: { language: 'kuery', query: s.query }, filter: [], indexRefName: 'kibanaSavedObjectMeta.searchSourceJSON.index' })
    }
  }, [{ type: 'index-pattern', id: s.dataView, name: 'kibanaSavedObjectMeta.searchSourceJSON.index' }])
}

export interface Panel { object: SavedObject, w: number, h: number }

/** Panels flow left to right in a 48-column grid. */
export function dashboard (id: string, title: string, description: string, panels: Panel[]): SavedObject {
  let x = 0
  let y = 0
  let rowHeight = 0
  const panelsJSON: unknown[] = []
  const references: Reference[] = []
  panels.forEach((p, i) => {
    if (x + p.w > 48) { x = 0; y += rowHeight; rowHeight = 0 }
    const index = String(i + 1)
    panelsJSON.push({ type: p.object.type, panelIndex: index, gridData: { x, y, w: p.w, h: p.h, i: index }, embeddableConfig: { enhancements: {} }, panelRefName: `panel_${index}` })
    references.push({ type: p.object.type, id: p.object.id, name: `${index}:panel_${index}` })
    x += p.w
    rowHeight = Math.max(rowHeight, p.h)
  })
  return object(id, 'dashboard', {
    title,
    description,
    panelsJSON: JSON.stringify(panelsJSON),
    optionsJSON: JSON.stringify({ useMargins: true, syncColors: false, syncCursor: true, syncTooltips: false, hidePanelTitles: false }),
    timeRestore: true,
    timeFrom: 'now-24h',
    timeTo: 'now',
    refreshInterval: { pause: false, value: 60_000 },
    kibanaSavedObjectMeta: { searchSourceJSON: JSON.stringify({ query: { language: 'kuery', query: '' }, filter: [] }) }
  }, references)
}

/** One object per line, keys in a fixed order: regenerating gives byte-identical files. */
export function toNdjson (objects: readonly SavedObject[]): string {
  return objects.map((o) => JSON.stringify(o)).join('\n') + '\n'
}

/** The fields a Lens visualization or saved search reads, with the operation reading them. */
export function fieldsUsed (o: SavedObject): Array<{ field: string, op: string }> {
  if (o.type === 'lens') {
    const state = o.attributes.state as { datasourceStates: { formBased: { layers: Record<string, { columns: Record<string, { sourceField: string, operationType: string }> }> } } }
    return Object.values(state.datasourceStates.formBased.layers).flatMap((l) => Object.values(l.columns))
      .filter((c) => c.sourceField !== '___records___').map((c) => ({ field: c.sourceField, op: c.operationType }))
  }
  if (o.type === 'search') return (o.attributes.columns as string[]).map((field) => ({ field, op: 'column' }))
  return []
}
