# Timed stages for .ci/run (sourced, not run). `stage NAME` ends the running stage and starts NAME;
# `stages_end RESULT` ends the running stage; `stages_summary` prints every stage's time and the
# total. They exist so that CI's duration stays visible against its budget (CI_BUDGET_MINUTES) as
# stages grow. Times are bash's whole $SECONDS, plenty at that scale.

CI_BUDGET_MINUTES=${CI_BUDGET_MINUTES:-45}

_stage_names=()
_stage_secs=()
_stage_results=()
_stage_current=
_stage_start=$SECONDS
_stages_start=$SECONDS

_stage_time() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# stage NAME: end the running stage (as ok) and start NAME.
stage() {
	stages_end ok
	_stage_current=$1
	_stage_start=$SECONDS
	echo "== $1"
}

# stages_end RESULT: record the running stage, if any, with RESULT and how long it ran.
stages_end() {
	[[ -n $_stage_current ]] || return 0
	local secs=$((SECONDS - _stage_start))
	_stage_names+=("$_stage_current")
	_stage_secs+=("$secs")
	_stage_results+=("$1")
	echo "== $_stage_current: $1 after $(_stage_time "$secs")"
	_stage_current=
}

# stages_summary: a table of the recorded stages and the total since stages.sh was sourced.
stages_summary() {
	local i total=$((SECONDS - _stages_start))
	echo "== stage times"
	for i in "${!_stage_names[@]}"; do
		printf '  %9s  %-4s  %s\n' "$(_stage_time "${_stage_secs[i]}")" "${_stage_results[i]}" "${_stage_names[i]}"
	done
	printf '  %9s        total (budget %dm)\n' "$(_stage_time "$total")" "$CI_BUDGET_MINUTES"
	if ((total > CI_BUDGET_MINUTES * 60)); then
		echo "== CI took longer than its ${CI_BUDGET_MINUTES}-minute budget"
	fi
}
