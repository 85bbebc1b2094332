// The package is "type": "module"; this marks dist/cjs as CommonJS so that require() loads its .js files.
import { writeFileSync } from 'node:fs';
writeFileSync(new URL('../dist/cjs/package.json', import.meta.url), JSON.stringify({ type: 'commonjs' }) + '\n');
