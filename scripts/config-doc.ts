import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { renderConfigReference } from '../src/config/reference.js'
import { packageRoot } from '../src/paths.js'

// Writes docs/CONFIG.md from the config schema (npm run docs:config). Commit the result:
// test/config/reference.test.ts fails when the committed file is not what the schema renders.
writeFileSync(join(packageRoot(), 'docs', 'CONFIG.md'), renderConfigReference())
process.stdout.write('docs/CONFIG.md written\n')
