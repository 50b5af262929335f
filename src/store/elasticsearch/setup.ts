import type { estypes } from '@elastic/elasticsearch'
import { leaseIndices } from './leases.js'
import { snapshotIndex } from './snapshots.js'
import { ElasticEngine } from './engine.js'
import { TEMPLATE_FILES, type ElasticsearchStore } from './store.js'

const TEMPLATES = TEMPLATE_FILES.map(([, name]) => name)
const LIFECYCLE_COMPONENT = 'keatrail-lifecycle@settings'
const POLICY = 'keatrail-logs'

export interface EsSetupReport {
  changed: string[]
  unchanged: string[]
  created: string[]
  existing: string[]
  /** What optional features were found and what was done with them. */
  features: string[]
}

/**
 * Installs what keatrail needs in a cluster: templates (from mappings/), the regular indices
 * for lease history and snapshots, and, where the cluster has it, an ILM policy for the event
 * data streams. Idempotent: a second run changes nothing and says so.
 */
export async function setupElasticsearch (store: ElasticsearchStore, namespace: string, retentionDays: number): Promise<EsSetupReport> {
  const client = store.client
  const changed = await store.ensureTemplates()
  const report: EsSetupReport = { changed, unchanged: TEMPLATES.filter((t) => !changed.includes(t)), created: [], existing: [], features: [] }
  const l = leaseIndices(namespace)
  for (const index of [l.intervals, l.obs, l.coverage, snapshotIndex(namespace)]) {
    if (await client.indices.exists({ index })) { report.existing.push(index); continue }
    await client.indices.create({ index }, { ignore: [400] })
    report.created.push(index)
  }
  if (!(client instanceof ElasticEngine)) {
    // OpenSearch's lifecycle is the ISM plugin, which its test build (and Maven Central) lacks:
    // not installed untested; docs/CONFIG.md's "Retention on OpenSearch" has the policy to apply.
    report.features.push(`ISM: not installed by keatrail (apply the policy in the README, "Scale out"; OpenSearch ${await client.nodeVersion().catch(() => '?')})`)
    return report
  }
  const es = client.client
  // ILM: only where the cluster has it (the x-pack ILM module); the events then roll over and
  // are deleted after the retention.
  const ilm = await es.ilm.getStatus().then(() => true, () => false)
  if (ilm) {
    const policy = { phases: { hot: { actions: { rollover: { max_age: '1d', max_primary_shard_size: '50gb' } } }, delete: { min_age: `${retentionDays}d`, actions: { delete: {} } } } }
    const existing = await es.ilm.getLifecycle({ name: POLICY }).catch(() => undefined)
    const same = JSON.stringify(existing?.[POLICY]?.policy?.phases) === JSON.stringify(policy.phases)
    if (!same) await es.ilm.putLifecycle({ name: POLICY, policy } as unknown as estypes.IlmPutLifecycleRequest)
    const comp = await client.cluster.getComponentTemplate({ name: LIFECYCLE_COMPONENT }, { ignore: [404] })
    if (comp.component_templates?.[0] === undefined) {
      await client.cluster.putComponentTemplate({ name: LIFECYCLE_COMPONENT, template: { settings: { 'index.lifecycle.name': POLICY } } })
    }
    // The events template from mappings/ does not name it (clusters without ILM reject the setting).
    const t = (await client.indices.getIndexTemplate({ name: 'keatrail-logs-kea' })).index_templates[0]?.index_template
    if (t !== undefined && !t.composed_of.includes(LIFECYCLE_COMPONENT)) {
      await client.indices.putIndexTemplate({ name: 'keatrail-logs-kea', ...t, composed_of: [...t.composed_of, LIFECYCLE_COMPONENT] } as unknown as estypes.IndicesPutIndexTemplateRequest)
    }
    report.features.push(`ILM: policy ${POLICY} (rollover daily, delete after ${retentionDays} days) ${same ? 'up to date' : 'installed'}`)
  } else {
    report.features.push('ILM: not available on this cluster (skipped; SQLite-style retention is not applied to Elasticsearch)')
  }
  const license = await es.license.get().then((r) => r.license.type, () => 'none')
  const version = await client.nodeVersion().catch(() => '0.0.0')
  const [major, minor] = version.split('.').map(Number) as [number, number]
  const logsdb = (major > 8 || (major === 8 && minor >= 17)) && ['trial', 'enterprise'].includes(license)
  report.features.push(logsdb ? `logsdb: available (license ${license}); events keep the standard index mode` : `logsdb: not available (Elasticsearch ${version}, license ${license})`)
  return report
}
