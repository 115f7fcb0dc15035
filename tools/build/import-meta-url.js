// import.meta.url in the CommonJS CLI bundles (cli-bundle.ts cjsImportMetaUrl): the
// bundle's own file URL, made without the URL class (tsup's shim builds one at every
// start, 0.2-0.4 ms of a CLI's start for a value --version alone reads). encodeURI
// leaves '?' and '#' alone; fileURLToPath reads the result back to __filename. The
// regex only for a path that has them: each regex compiles at its first use.
const path = encodeURI(__filename);
export const importMetaUrl = `file://${path.includes('?') || path.includes('#') ? path.replace(/[?#]/g, encodeURIComponent) : path}`;
