// sync.mjs - the package's tsunagu.js and tsunagu.d.ts are copies of
// signaling/www/ (the one source, served by tsunagu-signal at /tsunagu.js):
// in a checkout, copy them here (npm install / npm test / npm pack run this);
// in a copy of this directory made elsewhere, they must already be there.
import { copyFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, "..", "..", "signaling", "www");
for (const f of ["tsunagu.js", "tsunagu.d.ts"]) {
  if (existsSync(join(src, f))) copyFileSync(join(src, f), join(here, f));
  else if (!existsSync(join(here, f))) {
    console.error("sync.mjs: " + f + " is neither in " + src + " nor here: copy it from signaling/www/");
    process.exit(1);
  }
}
