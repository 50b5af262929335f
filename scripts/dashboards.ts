import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { dashboardFiles } from '../src/dashboards/keatrail.js'
import { toNdjson } from '../src/dashboards/saved-objects.js'
import { packageRoot } from '../src/paths.js'

// Writes dashboards/*.ndjson from src/dashboards/ (npm run dashboards). Commit the result:
// test/dashboards checks that the committed files are exactly what the code generates.
for (const [file, objects] of dashboardFiles()) {
  writeFileSync(join(packageRoot(), 'dashboards', file), toNdjson(objects))
  process.stdout.write(`dashboards/${file}: ${objects.length} objects\n`)
}
