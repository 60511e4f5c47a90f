// The simulator's embedding of a text: a unit vector that depends only on the text and the length
// asked for, so a test can check that every vector reached the input that asked for it.

import { createHash } from "node:crypto";
import { seededRandom } from "./seeded-random.ts";

/**
 * The vector the simulator answers for `text`: `dimensions` float32 values, uniform draws seeded
 * by the SHA-256 of the text, scaled to unit length (as OpenAI's embeddings are). The same text
 * gives the same vector at any seed, model or encoding; the first `d` values of a longer vector are
 * not those of a shorter one (like `dimensions` on text-embedding-3, which renormalises).
 */
export function expectedEmbedding(text: string, dimensions: number): Float32Array {
  const digest = createHash("sha256").update(text).digest();
  const random = seededRandom(digest.readUInt32LE(0) ^ dimensions);
  const vector = new Float32Array(dimensions);
  let norm = 0;
  for (let i = 0; i < dimensions; i++) {
    const v = 2 * random() - 1;
    vector[i] = v;
    norm += v * v;
  }
  const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
  for (let i = 0; i < dimensions; i++) vector[i] = vector[i]! * scale;
  return vector;
}

/** The vector as OpenAI's `encoding_format: "base64"` sends it: little-endian float32 bytes. */
export function embeddingBase64(vector: Float32Array): string {
  const bytes = Buffer.alloc(vector.length * 4);
  for (let i = 0; i < vector.length; i++) bytes.writeFloatLE(vector[i]!, i * 4);
  return bytes.toString("base64");
}
