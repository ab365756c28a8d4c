// The public API of the `arrwdb` package, shared by its web, Node and bundler builds.
import { Database } from "./database.js";
import { PersistentDatabase } from "./persistent.js";
import { Replica } from "./follow.js";

/** Opens (or creates) a database persisted to IndexedDB; see PersistentDatabase. */
Database.open = (name, options) => PersistentDatabase.open(name, options);
/** Deletes a persisted database. */
Database.destroy = (name) => PersistentDatabase.destroy(name);
/** Follows a library published to object storage; see Replica. */
Database.follow = (baseUrl, options) => Replica.follow(baseUrl, options);

export { Database, PersistentDatabase, Replica };
export { WorkerDatabase } from "./worker-client.js";
export { withEmbedder } from "./embed.js";
export { ArrwdbError, ERROR_KINDS, toArrwdbError } from "./errors.js";
