import { inject } from 'vitest'
import type { Distribution } from '../../src/store/elasticsearch/engine.js'
import { ElasticsearchStore } from '../../src/store/elasticsearch/store.js'
import type { ElasticsearchStoreConfig } from '../../src/store/elasticsearch/config.js'
import type { ElasticsearchStoreOptions } from '../../src/store/elasticsearch/store.js'

/** A real search engine of this run (test/helpers/es-setup.ts): its URL, or why there is none. */
export interface EngineUnderTest { name: Distribution, url: string, skip: string }

/** Elasticsearch and OpenSearch: the store suites run each of their cases against both. */
export function searchEngines (): EngineUnderTest[] {
  const es = inject('esUrl')
  const os = inject('osUrl')
  return [
    { name: 'elasticsearch', url: es, skip: es === '' ? inject('esSkipReason') : '' },
    { name: 'opensearch', url: os, skip: os === '' ? inject('osSkipReason') : '' }
  ]
}

/** A store on `engine` (its URL and distribution) with `cfg`'s other settings. */
export function engineStore (engine: EngineUnderTest, cfg: Omit<ElasticsearchStoreConfig, 'url'>, opts: ElasticsearchStoreOptions = {}): ElasticsearchStore {
  return new ElasticsearchStore({ ...cfg, url: engine.url }, { ...opts, distribution: engine.name })
}

/** The engines this run has, and why the others are missing ('' when both are here). */
export function enginesUp (): { up: EngineUnderTest[], skip: string } {
  const all = searchEngines()
  return { up: all.filter((e) => e.skip === ''), skip: all.filter((e) => e.skip !== '').map((e) => `${e.name}: ${e.skip}`).join('; ') }
}
