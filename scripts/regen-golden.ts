import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { packageRoot } from '../src/paths.js'
import { expectedPath, loadManifest, parseGolden } from './golden.js'

// Rewrites every <log>.expected.ndjson from the current parser. Review the diff before committing:
// the expected files are the parser's specification.
const fixtures = join(packageRoot(), 'test', 'fixtures')
for (const c of loadManifest(fixtures)) {
  const events = await parseGolden(fixtures, c)
  writeFileSync(expectedPath(fixtures, c), events.map((e) => JSON.stringify(e)).join('\n') + '\n')
  process.stdout.write(`${c.log}: ${events.length} events\n`)
}
