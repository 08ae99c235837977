# lib.sh: what the sample builders share. Sourced, never run.

# The Debian archive this machine's apt uses, never written into the repo: DEBIAN_MIRROR if
# set, else the first URI of an enabled `deb` stanza with a non-security suite in
# /etc/apt/sources.list.d/*.sources, else the first non-security `deb` line of
# /etc/apt/sources.list or /etc/apt/sources.list.d/*.list. Fails when there is none.
debian_mirror() {
    local f uri
    if [[ -n ${DEBIAN_MIRROR:-} ]]; then echo "$DEBIAN_MIRROR"; return; fi
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        # deb822 stanzas: the first URI of an enabled `deb` stanza with a non-security suite.
        uri=$(awk '
            function flush() {
                if (!found && types ~ /(^| )deb( |$)/ && enabled != "no" && uris != "" && suites != "") {
                    n = split(suites, s, " ")
                    for (i = 1; i <= n; i++) if (s[i] !~ /-security$/) { split(uris, u, " "); print u[1]; found = 1; exit }
                }
                types = uris = suites = enabled = ""
            }
            /^[ \t]*$/ { flush(); next }
            /^#/ { next }
            tolower($1) == "types:"   { $1 = ""; types = $0 }
            tolower($1) == "uris:"    { $1 = ""; sub(/^ +/, ""); uris = $0 }
            tolower($1) == "suites:"  { $1 = ""; suites = $0 }
            tolower($1) == "enabled:" { enabled = tolower($2) }
            END { flush() }' "$f")
        if [[ -n $uri ]]; then echo "$uri"; return; fi
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        uri=$(awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) while ($i !~ /\]$/) i++; if ($2 ~ /^\[/) i++
                                 if ($(i + 1) !~ /-security$/) { print $i; exit } }' "$f")
        if [[ -n $uri ]]; then echo "$uri"; return; fi
    done
    return 1
}
