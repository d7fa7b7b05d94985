// read_write_split's judgement of SQL text: which statements provably cannot write (and so give the same result on a
// replica, lag aside), which start a read-only transaction, and which end one. Anything it is not sure of is a write.

/** A statement as words (lower-cased), quoted identifiers ("Name", quotes kept), literals (') and symbols. */
export type Tokens = string[];

/**
 * Functions a routed read may call: built-ins that neither write nor change the session, and give the same answer on a
 * replica (pg_is_in_recovery() and inet_server_port() tell where the query ran, which is their point). A call to any
 * other function (user functions, nextval, setval, set_config, advisory locks, txid_current...) sends the statement
 * to the primary: PostgreSQL cannot tell pgbun whether a function writes.
 */
const READ_FUNCTIONS = new Set(
  (
    "count sum avg min max array_agg string_agg json_agg jsonb_agg json_object_agg jsonb_object_agg bool_and bool_or every " +
    "bit_and bit_or stddev stddev_pop stddev_samp variance var_pop var_samp percentile_cont percentile_disc mode " +
    "row_number rank dense_rank lag lead first_value last_value nth_value ntile cume_dist percent_rank " +
    "now clock_timestamp statement_timestamp transaction_timestamp timeofday date_trunc date_part age to_char to_date " +
    "to_timestamp to_number make_date make_time make_timestamp make_timestamptz make_interval justify_days justify_hours " +
    "lower upper length char_length character_length octet_length bit_length substr replace concat concat_ws format left right " +
    "lpad rpad ltrim rtrim btrim split_part strpos starts_with reverse repeat initcap md5 sha224 sha256 sha384 sha512 encode decode " +
    "translate quote_ident quote_literal quote_nullable ascii chr regexp_replace regexp_match regexp_matches regexp_split_to_array " +
    "regexp_split_to_table regexp_like abs ceil ceiling floor round trunc mod power pow sqrt cbrt exp ln log log10 sign div " +
    "pi degrees radians sin cos tan asin acos atan atan2 width_bucket random gen_random_uuid " +
    "json_build_object jsonb_build_object json_build_array jsonb_build_array to_json to_jsonb row_to_json array_to_json " +
    "json_extract_path json_extract_path_text jsonb_extract_path jsonb_extract_path_text json_array_length jsonb_array_length " +
    "json_array_elements jsonb_array_elements json_array_elements_text jsonb_array_elements_text json_each jsonb_each " +
    "json_each_text jsonb_each_text json_object_keys jsonb_object_keys jsonb_typeof json_typeof jsonb_strip_nulls jsonb_pretty " +
    "jsonb_set jsonb_insert jsonb_path_query jsonb_path_exists jsonb_path_match jsonb_path_query_array jsonb_path_query_first " +
    "unnest generate_series array_length array_position array_positions array_remove array_replace array_append array_prepend " +
    "array_cat array_dims array_lower array_upper array_ndims cardinality array_to_string string_to_array " +
    "current_setting current_database current_schema current_schemas version pg_is_in_recovery inet_server_port inet_server_addr " +
    "pg_typeof pg_column_size pg_size_pretty pg_relation_size pg_total_relation_size pg_table_size pg_indexes_size pg_database_size " +
    "pg_sleep to_tsvector to_tsquery plainto_tsquery phraseto_tsquery websearch_to_tsquery ts_rank ts_rank_cd ts_headline " +
    "num_nonnulls num_nulls isfinite extract date_bin"
  ).split(" "),
);

/**
 * Words that may stand before "(" without being a function call: syntax (IN (...), EXISTS (...), OVER (...), AS (...)),
 * the special forms PostgreSQL parses itself (COALESCE, CAST...), and type names with a modifier (numeric(10, 2)).
 */
const NOT_CALLS = new Set(
  (
    "in exists any all some values array row cast coalesce nullif greatest least position substring trim overlay over filter " +
    "within using on from join as and or not where select when then else by lateral distinct is ordinality with recursive case " +
    "between like ilike similar having limit offset group order union intersect except materialized table partition rows range " +
    "groups preceding following current asc desc nulls first last fetch next only returning escape collate at zone " +
    "numeric decimal varchar char character varying timestamp timestamptz time timetz interval bit varbit float double precision " +
    "int int2 int4 int8 integer smallint bigint real boolean bool text bytea date json jsonb uuid name oid"
  ).split(" "),
);

/** Words that never appear in a read: they write, lock, or change what the session or the cluster is. */
const WRITES = new Set(
  "insert update delete merge truncate copy call do lock notify listen unlisten into create alter drop grant revoke vacuum analyze cluster reindex refresh comment security".split(" "),
);

/** Splits SQL into statements of tokens; comments, literals and dollar-quoted bodies are skipped over. */
export function statements(sql: string): Tokens[] {
  const out: Tokens[] = [];
  let cur: Tokens = [];
  const n = sql.length;
  let i = 0;
  while (i < n) {
    const c = sql[i]!;
    if (c === "-" && sql[i + 1] === "-") {
      const nl = sql.indexOf("\n", i);
      i = nl < 0 ? n : nl + 1;
    } else if (c === "/" && sql[i + 1] === "*") {
      // PostgreSQL's block comments nest.
      let depth = 0;
      do {
        if (sql.startsWith("/*", i)) {
          depth++;
          i += 2;
        } else if (sql.startsWith("*/", i)) {
          depth--;
          i += 2;
        } else i++;
      } while (depth > 0 && i < n);
    } else if (c === "'") {
      i = skipQuoted(sql, i, "'");
      cur.push("'");
    } else if (c === '"') {
      const end = skipQuoted(sql, i, '"');
      cur.push(sql.slice(i, end));
      i = end;
    } else if (c === "$" && /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.test(sql.slice(i, i + 64))) {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64))![0];
      const close = sql.indexOf(tag, i + tag.length);
      i = close < 0 ? n : close + tag.length;
      cur.push("'");
    } else if (/[A-Za-z_\u0080-\uffff]/.test(c)) {
      const m = /^[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*/.exec(sql.slice(i, i + 256))!;
      // E'...', B'...', X'...', U&'...': the letter belongs to the literal.
      if (sql[i + m[0].length] === "'" && /^(e|b|x|n)$/i.test(m[0])) {
        i += m[0].length;
        continue;
      }
      cur.push(m[0].toLowerCase());
      i += m[0].length;
    } else if (/[0-9]/.test(c)) {
      const m = /^[0-9.eE+-]+/.exec(sql.slice(i, i + 64))!;
      cur.push("0");
      i += m[0].length;
    } else if (c === ";") {
      if (cur.length > 0) out.push(cur);
      cur = [];
      i++;
    } else if (c === ":" && sql[i + 1] === ":") {
      cur.push("::");
      i += 2;
    } else if (/\s/.test(c)) {
      i++;
    } else {
      cur.push(c);
      i++;
    }
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** The index just past a quoted run starting at `from` (a doubled quote stays inside; E'' strings may escape with \). */
function skipQuoted(sql: string, from: number, q: string): number {
  const escapes = q === "'" && from > 0 && /[eE]/.test(sql[from - 1]!);
  let i = from + 1;
  while (i < sql.length) {
    const c = sql[i]!;
    if (escapes && c === "\\") i += 2;
    else if (c === q) {
      if (sql[i + 1] === q) i += 2;
      else return i + 1;
    } else i++;
  }
  return sql.length;
}

/** A statement that reads only: SELECT, VALUES, TABLE or WITH, with no locking clause, no INTO, and only known functions. */
export function isRead(t: Tokens): boolean {
  const first = t[0];
  if (first !== "select" && first !== "values" && first !== "table" && first !== "with" && first !== "(") return false;
  for (let i = 0; i < t.length; i++) {
    const w = t[i]!;
    if (WRITES.has(w)) return false;
    // SELECT ... FOR UPDATE / FOR NO KEY UPDATE / FOR SHARE / FOR KEY SHARE takes row locks: only the primary can.
    if (w === "for" && (t[i + 1] === "update" || t[i + 1] === "share" || t[i + 1] === "no" || t[i + 1] === "key")) return false;
    if (t[i + 1] !== "(") continue;
    if (w.startsWith('"')) return false;
    if (!/^[a-z_]/.test(w) || NOT_CALLS.has(w)) continue;
    // schema.function(: only pg_catalog's own.
    if (t[i - 1] === "." && t[i - 2] !== "pg_catalog") return false;
    if (t[i - 1] === "::") continue;
    if (!READ_FUNCTIONS.has(w)) return false;
  }
  return true;
}

/** BEGIN / START TRANSACTION ... READ ONLY, not SERIALIZABLE (which a hot standby refuses). */
export function beginsReadOnly(t: Tokens): boolean {
  const start = t[0] === "begin" || (t[0] === "start" && t[1] === "transaction");
  return start && hasReadOnly(t);
}

/** SET TRANSACTION READ ONLY (not SERIALIZABLE): in a transaction that has not run a query yet, makes it read-only. */
export function setsReadOnly(t: Tokens): boolean {
  return t[0] === "set" && t[1] === "transaction" && hasReadOnly(t);
}

/** A plain BEGIN or START TRANSACTION with no access mode of its own. */
export function beginsPlain(t: Tokens): boolean {
  const start = t[0] === "begin" || (t[0] === "start" && t[1] === "transaction");
  return start && !t.includes("read") && !t.includes("serializable");
}

function hasReadOnly(t: Tokens): boolean {
  if (t.includes("serializable")) return false;
  for (let i = 0; i + 1 < t.length; i++) if (t[i] === "read" && t[i + 1] === "only") return true;
  return false;
}

/** COMMIT, END, ROLLBACK or ABORT that ends the transaction (not ROLLBACK TO a savepoint, not AND CHAIN, not PREPARED). */
export function endsTransaction(t: Tokens): boolean {
  if (t[0] !== "commit" && t[0] !== "end" && t[0] !== "rollback" && t[0] !== "abort") return false;
  return !t.includes("to") && !t.includes("chain") && !t.includes("prepared");
}
