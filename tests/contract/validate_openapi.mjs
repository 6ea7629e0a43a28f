// validate_openapi.mjs: docs/openapi.json checked by swagger-parser, an
// established OpenAPI validator (the OpenAPI 3.1 JSON schema plus its own
// semantic rules: unique operationIds, path parameters declared, $refs
// that resolve). Usage: node validate_openapi.mjs FILE. Exit 0 valid, 1 not.
import SwaggerParser from "@apidevtools/swagger-parser";

const file = process.argv[2];
if (!file) {
  console.error("usage: node validate_openapi.mjs FILE");
  process.exit(2);
}
try {
  const api = await SwaggerParser.validate(file);
  const ops = Object.values(api.paths).reduce((n, p) => n + Object.keys(p).length, 0);
  if (!api.openapi.startsWith("3.1")) throw new Error(`openapi is ${api.openapi}, not 3.1`);
  console.log(`${file}: valid OpenAPI ${api.openapi}, ${Object.keys(api.paths).length} paths, ${ops} operations`);
} catch (e) {
  console.error(`${file}: INVALID: ${e.message}`);
  process.exit(1);
}
