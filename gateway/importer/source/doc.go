// Package source reads everything an import needs from a source over its REST API: an MLflow
// tracking server (2.x or 3.x) or a GitLab project's MLflow-compatible API, plus the artifacts behind
// the URIs they hand out (mlflow-artifacts proxy, http(s), GitLab generic and ml_model packages,
// s3://, file:// and local paths).
//
// Every request is retried with exponential backoff and jitter on connection errors, timeouts, 408,
// 429 (honouring Retry-After) and 5xx; other 4xx are final. Artifact streams that break are resumed
// with Range requests from the byte reached.
//
// Quirks of real sources handled here (seen in the reference traces of MLflow 2.17 and 3.6, in
// GitLab's code, or both):
//   - empty lists are omitted: an empty search answers {} (no "experiments", "runs", "files" …);
//     a missing next_page_token ends the paging; an empty 200 body counts as {}.
//   - int64 fields may come as JSON strings (protobuf JSON mapping) or as floats; doubles may be the
//     strings "NaN", "Infinity", "-Infinity"; strings may come as null or numbers (GitLab's user_id,
//     versions).
//   - runs carry run_id and run_uuid (older servers only run_uuid); a run without run_name keeps its
//     name in the mlflow.runName tag.
//   - MLflow 3 fields are optional: inputs.model_inputs, outputs.model_outputs, metric model_id /
//     dataset_name / dataset_digest; logged models use creation_timestamp_ms and artifact_uri.
//   - a 2.x server (and GitLab) has no logged-models/search: 404 ENDPOINT_NOT_FOUND, NOT_IMPLEMENTED,
//     405 or a bare 404 mean "no logged models".
//   - the artifact listing returns basenames one level at a time; a file or a missing path lists as {};
//     directories have no file_size. Downloads may be chunked without Content-Length.
//   - artifact listings from other servers may carry whole paths, the listed directory or the root in
//     front of each name, or %-escaped names: they are normalized, and names that would escape the
//     root ("..", absolute) are refused.
//   - the reference server may answer a whole metric history in one page (no token) even past
//     max_results; tokens are followed when sent, and a token sent twice is an error (paging loop).
//   - GitLab: search filters and run_view_type are ignored and only the first experiment id is used,
//     so runs and model versions are filtered here; registry timestamps are seconds (any registry
//     timestamp below 1e11 is taken as seconds); version is a database id (kept as sent); experiment
//     artifact_location is "not_implemented" (kept as sent, never used to read files); histories are
//     capped at 1000 points (exactly 1000 without a next page is ErrIncomplete); artifact URIs point
//     at generic packages ml_experiment_<iid>/<candidate iid> or ml_model packages (candidate:<iid>,
//     a version id), listed flat through the proxy as path=candidate:<iid> (or the version id);
//     a missing model-versions/search falls back to the latest versions and ErrIncomplete;
//     a token goes as PRIVATE-TOKEN; a missing project or an unreadable one are both 404.
//   - errors come as {"error_code","message"} (MLflow) or {"message"} / {"error"} (GitLab); both
//     are shown.
//
// Credentials are sent only to the source's own scheme and host, never to other hosts an artifact
// URI may name.
package source
