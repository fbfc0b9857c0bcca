//! File descriptors: `max_connections` only means something if the process may
//! open that many sockets. Without this check, a gateway under the common soft
//! limit of 1024 runs out of descriptors long before `max_connections`: accept
//! fails, upstream connects fail (502s to clients already connected), and the
//! admin listener stops answering.

use crate::Error;

/// Descriptors a proxied client connection needs: its own socket and one to
/// the upstream.
pub(crate) const FDS_PER_CONNECTION: u64 = 2;
/// Descriptors kept aside for the rest: listeners, admin clients, the
/// configuration watcher, standard streams, idle pooled upstream connections.
pub(crate) const FDS_RESERVE: u64 = 64;

/// Descriptors `max_connections` needs.
fn needed(max_connections: usize) -> u64 {
    u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_mul(FDS_PER_CONNECTION)
        .saturating_add(FDS_RESERVE)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (what Go's runtime does
/// at start, and nginx's `worker_rlimit_nofile`), then returns how many client
/// connections to accept at most: `max_connections` if the limit holds it.
/// Otherwise a `max_connections` written in the configuration is refused with
/// the numbers and the fix, and the default one is lowered to what fits, with
/// a warning.
pub(crate) fn fit_max_connections(
    max_connections: usize,
    configured: bool,
) -> Result<usize, Error> {
    let needed = needed(max_connections);
    let soft = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => soft,
        // The hard limit may be above what the kernel allows (fs.nr_open):
        // ask for what is needed only.
        Err(_) => match rlimit::increase_nofile_limit(needed) {
            Ok(soft) => soft,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read or raise RLIMIT_NOFILE; max_connections is not checked against it");
                return Ok(max_connections);
            }
        },
    };
    if soft >= needed {
        return Ok(max_connections);
    }
    let fits = usize::try_from(soft.saturating_sub(FDS_RESERVE) / FDS_PER_CONNECTION)
        .unwrap_or(usize::MAX);
    if configured || fits == 0 {
        return Err(Error::FileDescriptors {
            max_connections,
            needed,
            limit: soft,
            fits: fits.max(1),
        });
    }
    tracing::warn!(
        max_connections = fits,
        limit = soft,
        "the default max_connections ({max_connections}) needs about {needed} file descriptors, more \
         than RLIMIT_NOFILE ({soft}) allows: accepting {fits} connections at most; raise the limit \
         (LimitNOFILE={needed} in the systemd unit) or set server.max_connections"
    );
    Ok(fits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_descriptors_per_connection_and_a_reserve() {
        assert_eq!(needed(10_000), 20_064);
        assert_eq!(needed(usize::MAX), u64::MAX);
    }
}
