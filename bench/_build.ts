import { buildLayout, layoutLayerBytes } from './lib/images.js';
import { IMAGES } from './lib/workloads.js';
for (const img of IMAGES) {
  const l = await buildLayout(`bench-${img.name}`, img.roots);
  console.log(img.name, l, layoutLayerBytes(l));
}
