// Compiled by types.test.mjs, which expects every marked line to be an error: the
// declarations must reject what the engine rejects.
import { Database } from "arrwdb";

const db = new Database();
db.createLibrary({ name: "x", dimension: 3, metric: "euclid" }); // error: metric
db.createLibrary({ name: "x", dimension: 3, index: { type: "hnsw", ef: 3 } }); // error: index param
db.search("x", { vector: "1,2,3" }); // error: vector
db.search("x", { rerank: [{ type: "recency", half_life_days: 3 }] }); // error: recency needs field
db.search("x", { fusion: { method: "rrf", normalization: "min_max" } }); // error: rrf has no normalization
db.upsertBatch("x", { ids: ["a"] }); // error: vectors missing
const n: string = db.seq("x"); // error: seq is a number
db.deleteDocuments("x", { id: "a" }); // error: ids or filter
