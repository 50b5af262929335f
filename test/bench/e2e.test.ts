import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, inject, it } from 'vitest'
import { ROOT } from '../helpers/fixtures.js'

// bench/e2e must stay runnable by anyone: a small run of the whole comparison (keatrail and
// syslog-ng, SQLite/file and Elasticsearch, both mixes) must complete and print its table and
// ratios. No figure is asserted: performance is read from the full run, never from tests.

const esUrl = inject('esUrl')
const exec = promisify(execFile)

describe.skipIf(esUrl === '')(`bench/e2e runs end to end${esUrl === '' ? ` (skipped: ${inject('esSkipReason')})` : ''}`, () => {
  it('runs keatrail and syslog-ng on the same small logs and prints every row and the ratios', async () => {
    const { stdout } = await exec(process.execPath, ['--expose-gc', join(ROOT, 'dist', 'bench', 'e2e.js'), '3000', '--mix', 'both'],
      { env: { ...process.env, ES_URL: esUrl }, encoding: 'utf8', timeout: 240_000, maxBuffer: 1 << 20 })
    for (const mix of ['INFO', 'DEBUG']) {
      for (const row of ['keatrail  file → parse → SQLite', 'syslog-ng file → regexp → file', 'keatrail  file → parse → Elasticsearch', 'syslog-ng file → regexp → elasticsearch-http()']) {
        expect(stdout).toMatch(new RegExp(`^${mix} +${row.replace(/[().]/g, '\\$&')} +[\\d,]+ +[\\d.]+ +[\\d,]+`, 'm'))
      }
      expect(stdout).toMatch(new RegExp(`^${mix} ratios: into Elasticsearch, events per CPU-second keatrail/syslog-ng = [\\d.]+×`, 'm'))
    }
  }, 300_000)
})
