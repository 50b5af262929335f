import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { KEA_VERSIONS, KeaLab, keaRuntime, type KeaRuntime } from '../helpers/kea.js'
import { ROOT } from '../helpers/fixtures.js'
import { SOAK, storedOriginals } from './harness.js'
import { COUNT_STORED_SQL } from '../helpers/stored.js'

// Chaos: the file source against the real thing, each Kea version tested for real (2.2 from the
// host's packages, 2.6 and 3.0 from Debian's in chroots). Kea logs at INFO with maxsize 204800, so
// it rotates (x.log → x.log.1 …) many times under perfdhcp load, while keatrail is killed with
// SIGKILL at random points and restarted, at least 20 times (soak: 150, under longer load).
// Afterwards every line of every file (current and rotated) must be in the store exactly once.

const HEADER = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} /

function startKeatrail (config: string): ChildProcess {
  return spawn(process.execPath, [join(ROOT, 'bin', 'keatrail.js'), 'run', '--config', config], { stdio: ['ignore', 'ignore', 'ignore'] })
}

async function exited (p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return
  await new Promise<void>((resolve) => p.on('exit', () => resolve()))
}

KEA_VERSIONS.forEach((version, n) => {
  const found = keaRuntime(version)
  const unavailable = typeof found === 'string' ? found : ''
  describe.skipIf(unavailable !== '' && process.env.CI !== 'true')(`file source on real Kea ${version} rotation${unavailable === '' ? '' : ` (skipped: ${unavailable})`}`, () => {
    const dir = mkdtempSync(join(tmpdir(), `kt-kea-rot-${version}-`))
    const lab = new KeaLab(`kt${n}${process.pid % 1000}`, dir, found as KeaRuntime)
    afterAll(() => lab.down())

    it('stores every line of every rotated file exactly once across repeated kill -9', async () => {
      if (unavailable !== '') throw new Error(`CI needs real Kea ${version}: ${unavailable}`)
      lab.up()
      const logs = join(dir, 'logs')
      const log = join(logs, 'kea-dhcp4.log')
      mkdirSync(logs, { recursive: true })
      await lab.startKea(4, {
        'valid-lifetime': 60,
        subnet4: [{ id: 1, subnet: '192.0.2.0/24', pools: [{ pool: '192.0.2.10 - 192.0.2.240' }] }],
        loggers: [{ name: 'kea-dhcp4', severity: 'INFO', output_options: [{ output: log, maxsize: 204800, maxver: 400 }] }]
      })
      const config = join(dir, 'keatrail.yaml')
      writeFileSync(config, [
        `dataDir: ${join(dir, 'data')}`,
        'sources:',
        '  - type: file',
        '    name: kea4',
        `    include: ["${log}*"]`,
        '    timeZone: UTC',
        '    pollIntervalMs: 50',
        '    idleFlushMs: 300',
        '    batchEvents: 200'
      ].join('\n') + '\n')

      let keatrail = startKeatrail(config)
      const KILLS = SOAK ? 150 : 20
      const load = lab.perfdhcp(['-r', '400', '-R', '5000', '-p', SOAK ? '120' : '12'])
      let kills = 0
      let loadDone = false
      void load.then(() => { loadDone = true })
      while (!loadDone || kills < KILLS) {
        await new Promise((resolve) => setTimeout(resolve, 400 + Math.floor(Math.random() * 900)))
        keatrail.kill('SIGKILL')
        await exited(keatrail)
        kills++
        keatrail = startKeatrail(config)
      }
      await load
      await lab.stopDaemons()

      const files = readdirSync(logs).filter((f) => f.startsWith('kea-dhcp4.log') && !f.endsWith('.lock'))
      const lines = files.flatMap((f) => readFileSync(join(logs, f), 'utf8').split('\n').filter((l) => l !== ''))
      expect(files.length, 'Kea rotated at least 5 times').toBeGreaterThan(5)
      expect(lines.every((l) => HEADER.test(l))).toBe(true)

      // Let keatrail catch up, then stop it gracefully.
      const db = (): Database.Database => new Database(join(dir, 'data', 'keatrail.db'), { readonly: true })
      let stored = 0
      for (let i = 0; i < 300 && stored < lines.length; i++) {
        await new Promise((resolve) => setTimeout(resolve, 200))
        try { const d = db(); stored = (d.prepare(COUNT_STORED_SQL).get() as { n: number }).n; d.close() } catch { /* not yet created */ }
      }
      keatrail.kill('SIGTERM')
      await exited(keatrail)

      const originals = await storedOriginals(join(dir, 'data', 'keatrail.db'))
      process.stdout.write(`chaos kill -9 (Kea ${version}): ${files.length} files, ${lines.length} lines, ${kills} kill -9, ${originals.length} stored\n`)
      expect(kills).toBeGreaterThanOrEqual(KILLS)
      expect(originals.length).toBe(lines.length)
      expect([...originals].sort()).toEqual([...lines].sort())
    }, SOAK ? 1_800_000 : 240_000)
  })
})
