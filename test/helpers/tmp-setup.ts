import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * Gives the run one temporary directory (TMPDIR for every test worker and what it spawns) and
 * removes it afterwards: the tests' data directories reach gigabytes (the chaos suite's syslog
 * stores alone ~9 GB) and would pile up in /tmp run after run. KEATRAIL_KEEP_TMP=1 keeps it for
 * a post-mortem. Listed after es-setup so the shared Elasticsearch keeps the system /tmp.
 */
export default function setup (): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'keatrail-test-'))
  // Like /tmp: the Elasticsearch the chaos suite starts runs as another user and needs its own dirs here.
  chmodSync(dir, 0o1777)
  process.env.TMPDIR = dir
  return () => {
    if (process.env.KEATRAIL_KEEP_TMP === '1') process.stderr.write(`test files kept in ${dir}\n`)
    else rmSync(dir, { recursive: true, force: true })
  }
}
