import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { buildApp } from '../../src/api/app.js'
import { emptyFlow } from '../../src/pipeline/pipeline.js'
import { SqliteStore } from '../../src/store/sqlite/store.js'

describe('/metrics', () => {
  it('exposes what the service reports under Prometheus names', async () => {
    const store = new SqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'kt-metrics-')), 'k.db') })
    const app = await buildApp({
      store,
      status: {
        sources: () => ({ relay: { received: 4096, dropped: 3, spilled: 7, errors: 1 } }),
        flows: () => ({ relay: { ...emptyFlow(), events: 10, ok: 8, unmatched: 2, stored: 9, duplicates: 1 } }),
        pipeline: () => ({ batches: 2, stored: 9, duplicates: 1, deadLettered: 0, storeErrors: 4, queued: 1, backpressured: 5 }),
        kea: () => ({ polls: 3, leaseSeedsIncomplete: 1, failures: 1, webhookSent: 2 }),
        deadLetters: () => 6,
        deadLettersDropped: () => 11,
        leaseRepairs: () => 3, leaseWipesIgnored: () => 12,
        sourceStates: () => ({ relay: 'failed' })
      }
    })
    try {
      const text = (await app.inject({ url: '/metrics' })).body
      for (const line of [
        'keatrail_source_received_bytes_total{source="relay"} 4096',
        'keatrail_source_received_events_total{source="relay"} 10',
        'keatrail_source_parsed_events_total{source="relay",status="unmatched"} 2',
        'keatrail_source_events_total{source="relay",outcome="stored"} 9',
        'keatrail_source_events_total{source="relay",outcome="duplicate"} 1',
        'keatrail_source_discarded_events_total{source="relay"} 3',
        'keatrail_source_spilled_events_total{source="relay"} 7',
        'keatrail_source_errors_total{source="relay"} 1',
        'keatrail_source_state{source="relay",state="failed"} 1',
        'keatrail_source_state{source="relay",state="running"} 0',
        'keatrail_pipeline_store_errors_total 4',
        'keatrail_pipeline_backpressure_waits_total 5',
        'keatrail_pipeline_queued_batches 1',
        'keatrail_kea_polls_total 3',
        'keatrail_kea_lease_seeds_incomplete_total 1',
        'keatrail_kea_webhook_sent_total 2',
        'keatrail_deadletter_events 6',
        'keatrail_deadletter_dropped_events_total 11',
        'keatrail_lease_history_repaired_keys_total 3',
        'keatrail_lease_wipes_ignored_total 12'
      ]) expect(text).toContain(line)
      expect(text).toMatch(/^# TYPE keatrail_source_events_total counter$/m)
      expect(text).toMatch(/^# TYPE keatrail_pipeline_queued_batches gauge$/m)
    } finally {
      await app.close()
      await store.close()
    }
  })
})
