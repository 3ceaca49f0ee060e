#!/bin/sh
# Read-only check of a node's fail2ban, every run (pvefail2ban.operations.verified parses this).
#   verify.sh PING_TIMEOUT BANACTION_TOOL IGNOREIP_CHECK_PY F2BSTATUS_PY "DAEMON..."|- OUR_JAIL...
# Every jail that runs is read, ours or not: one Python process (f2bstatus.py) waits for fail2ban's
# ping and answers status and every jail's status, as `fail2ban-client -i` prints them. For each of our jails, the firewall rules its action makes at
# jail start must be in place, and an action error since fail2ban's last start is reported.
timeout=$1 tool=$2 ignoreip_check=$3 f2bstatus=$4 daemons=$5; shift 5
# our daemons that must run (cluster-wide bans; metrics and notifications)
[ "$daemons" = - ] || for daemon in $daemons; do echo "daemon $daemon=$(systemctl is-active "$daemon" 2>&1)"; done
statuses=$(python3 -c "$f2bstatus" "$timeout" "$@" 2>&1)
case $statuses in
  ping=yes*) ;;
  *)
    echo "ping=no"
    systemctl status --no-pager -n 5 fail2ban 2>&1 | sed 's/^/status: /'
    exit 0
    ;;
esac
printf '%s\n\n' "$statuses"
# one line of a jail's status, e.g. its "Journal matches" or "File list" (each fail2ban-client process
# costs a Python start on the node: what the status already says is not asked again)
status_of() {
  printf '%s\n' "$statuses" | awk -v jail="$1" -v label="$2" '
    /Status for the jail: / { current = $NF }
    current == jail && index($0, label ":") { sub(".*" label ":[ \t]*", ""); print; exit }'
}
case $tool in
  nft) nft list tables >/dev/null 2>&1 && echo "firewall=ok" || echo "firewall=$(nft list tables 2>&1 | head -1)" ;;
  iptables) iptables -w -n -L INPUT >/dev/null 2>&1 && echo "firewall=ok" || echo "firewall=$(iptables -w -n -L INPUT 2>&1 | head -1)" ;;
esac
rules_in_place() {
  case $tool in
    nft) nft list chain inet f2b-table f2b-chain 2>/dev/null | grep -q "@addr-set-$1 " ;;
    iptables) iptables -w -S "f2b-$1" >/dev/null 2>&1 && iptables -w -S 2>/dev/null | grep -q -- "-j f2b-$1\$" ;;
  esac
}
# fail2ban's log since its last start: its own words when an action failed
action_error() {
  awk '/Starting Fail2ban/ { buf = "" } { buf = buf $0 "\n" } END { printf "%s", buf }' /var/log/fail2ban.log 2>/dev/null \
    | grep -E "ERROR .*(jail '$1' action|Jail\('$1'\))" | tail -n 1
}
# Each jail's action makes its rules in the jail's own thread, just after the jail starts: right
# after a (re)start they may take a moment. Wait for them (PING_TIMEOUT in all), unless the action
# failed.
i=0
for jail in "$@"; do
  until rules_in_place "$jail"; do
    i=$((i + 1))
    if [ -n "$(action_error "$jail")" ] || [ "$i" -gt $((timeout * 4)) ]; then break; fi
    sleep 0.25
  done
  rules_in_place "$jail" && echo "rules $jail=ok" || echo "rules $jail=missing"
  action_error "$jail" | sed "s/^/actionerror $jail /"
done
# Each jail's source, as fail2ban reads it (its journal match or log files): the last lines must
# exist, and where they hold failures of the daemon, the jail's filter must find them (fail2ban-regex,
# run only then). Its answer is kept with the failures and the configuration's content it was given:
# the same lines under the same configuration are not run through fail2ban-regex again.
state=/var/lib/pve-fail2ban
content=$( { find /etc/fail2ban -type f -print0 | sort -z | xargs -0 sha1sum; dpkg-query -W -f='${Version}' fail2ban; } 2>/dev/null \
  | sha1sum | cut -d' ' -f1)
for jail in "$@"; do
  case $jail in
    sshd) pattern='Failed password for|Invalid user' ;;
    proxmox|pmg) pattern='authentication (verification )?failure; rhost=[0-9A-Fa-f:.]' ;;
    pbs) pattern='authentication failure; rhost=\[?[0-9A-Fa-f:.]' ;;
    *) continue ;;
  esac
  match=$(status_of "$jail" "Journal matches")
  if [ -n "$match" ]; then
    # shellcheck disable=SC2086  # the match is words and + signs, as journalctl takes them
    lines=$(journalctl -q -o short --no-pager -n 100 $match 2>/dev/null)
  else
    lines=$(for f in $(status_of "$jail" "File list"); do tail -n 100 "$f" 2>/dev/null; done)
  fi
  if [ -z "$lines" ]; then echo "source $jail=empty"; continue; fi
  failures=$(printf '%s\n' "$lines" | grep -E "$pattern")
  if [ -n "$failures" ]; then
    key=$(printf '%s\n%s\n' "$content" "$failures" | sha1sum | cut -d' ' -f1)
    seen=$(sed -n "s/^$key //p" "$state/seen-$jail" 2>/dev/null)
    if [ -z "$seen" ]; then
      sample=$(mktemp)
      printf '%s\n' "$failures" > "$sample"
      found=$(fail2ban-regex "$sample" "$jail" 2>/dev/null | sed -n 's/^Lines: .*, \([0-9]*\) matched.*/\1/p')
      rm -f "$sample"
      seen="$(printf '%s\n' "$failures" | wc -l) ${found:-0}"
      mkdir -p "$state" && echo "$key $seen" > "$state/seen-$jail"
    fi
    echo "seen $jail $seen"
  fi
done
# The configuration on disk must pass fail2ban's test, or the next restart fails. Testing parses it
# all twice (-t, -d: most of a no-op run's CPU on the node), so it is re-tested only when its content
# (every file under /etc/fail2ban, and the fail2ban version) differs from the last one that passed.
tested=$state/config-tested
if [ "$(cut -d' ' -f1 "$tested" 2>/dev/null)" = "$content" ]; then
  echo "config=unchanged $(cut -d' ' -f2 "$tested")"
elif ! out=$(fail2ban-client -t 2>&1); then
  echo "config=broken"
  printf '%s\n' "$out" | grep -v "WARNING" | tail -n 5 | sed 's/^/config: /'
elif ! out=$(fail2ban-client -d 2>/dev/null | python3 -c "$ignoreip_check"); then
  echo "config=broken"
  printf '%s\n' "$out" | sed 's/^/config: /'
else
  mkdir -p "${tested%/*}" && echo "$content $(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$tested"
  echo "config=tested"
fi
