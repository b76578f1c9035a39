# shellcheck shell=bash
# What the benchmark scripts share in writing their records under
# benches/results/ (sourced, not run).

# record_path NAME: benches/results/NAME.md, or NAME-2.md, NAME-3.md... the
# first that does not exist yet: a record is never overwritten, even by a
# second run on the same day.
record_path() {
    local path=benches/results/$1.md n=2
    while [ -e "$path" ]; do
        path=benches/results/$1-$n.md
        n=$((n + 1))
    done
    echo "$path"
}

# raw_figures FILE: the record's tail, the measuring scripts' own output.
raw_figures() {
    echo "Raw figures:"
    echo
    echo '```'
    cat "$1"
    echo '```'
}
