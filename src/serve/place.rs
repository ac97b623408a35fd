//! What every route shares: the scope and namespace a path names, the refusal a handler answers with ([`Failure`]), the HTTP status of each library
//! error, and [`blocking`], which runs a library call on tokio's blocking pool.

use std::{str::FromStr, time::Duration};

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;
use shmsem::{Namespace, Options, Scope, Semaphore};

/// How long a request waits for a namespace's lock before answering 503.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// A refusal or failure: its status and a message for the client. Routes under `/api/` answer
/// it as JSON `{"error"}`; the pages turn it into an HTML page.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, in one line.
    pub message: String,
}

impl Failure {
    /// A failure with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }

    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, message)
    }

    /// The JSON body of the contract.
    pub fn to_json(&self) -> serde_json::Value {
        json!({ "error": self.message })
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.status, Json(self.to_json())).into_response()
    }
}

impl From<shmsem::Error> for Failure {
    fn from(err: shmsem::Error) -> Failure {
        use shmsem::Error as E;
        let status = match &err {
            E::InvalidName { .. } | E::InvalidArgument { .. } | E::WeightTooLarge { .. } => {
                StatusCode::BAD_REQUEST
            }
            E::NotFound { .. } | E::Removed { .. } | E::NoNamespace { .. } => StatusCode::NOT_FOUND,
            E::PermissionDenied { .. } => StatusCode::FORBIDDEN,
            // A file that is not a segment of this version, or a semaphore in the way: the
            // request conflicts with what is there.
            E::AlreadyExists { .. }
            | E::InUse { .. }
            | E::Mismatch { .. }
            | E::Incompatible { .. }
            | E::Corrupt { .. } => StatusCode::CONFLICT,
            E::TableFull { .. } => StatusCode::INSUFFICIENT_STORAGE,
            E::Busy { .. } | E::Timeout { .. } | E::WouldBlock { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            // An operating-system call failed on the namespace's files (removed or replaced
            // under the server, for instance): the request conflicts with what is there. The
            // server answers no 500 for the library's errors.
            _ => StatusCode::CONFLICT,
        };
        Failure::new(status, error_line(&err))
    }
}

/// The error and its causes on one line, as the command prints them.
fn error_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        line.push_str(": ");
        line.push_str(&c.to_string());
        cause = c.source();
    }
    line
}

/// Run the library call `f` on the blocking pool; its error becomes the [`Failure`] of its
/// status, a panic a 500.
pub async fn blocking<T, F>(f: F) -> Result<T, Failure>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, shmsem::Error> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(Failure::from),
        Err(e) => Err(Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the request's task failed: {e}"),
        )),
    }
}

/// A semaphore's place and name, from a path `/S/NS/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The scope.
    pub scope: Scope,
    /// The namespace.
    pub namespace: String,
}

impl Place {
    /// The place of path segments `scope` and `namespace`: an unknown scope or a malformed
    /// namespace is 400.
    pub fn parse(scope: &str, namespace: &str) -> Result<Place, Failure> {
        let scope = Scope::from_str(scope).map_err(|_| {
            Failure::bad_request(format!("unknown scope {scope:?} (self, local or global)"))
        })?;
        shmsem::validate_name(namespace)
            .map_err(|e| Failure::bad_request(format!("namespace: {e}")))?;
        Ok(Place {
            scope,
            namespace: namespace.to_owned(),
        })
    }

    /// Options for semaphores of this place, with a bounded wait for locks.
    pub fn options(&self) -> Options {
        Semaphore::options()
            .scope(self.scope)
            .namespace(self.namespace.clone())
            .lock_timeout(LOCK_WAIT)
    }

    /// The namespace itself.
    pub fn namespace(&self) -> Result<Namespace, Failure> {
        Namespace::new(self.scope, self.namespace.clone()).map_err(Failure::from)
    }
}

/// A semaphore name from a path: 400 when it breaks the naming rule.
pub fn checked_name(name: &str) -> Result<(), Failure> {
    shmsem::validate_name(name).map_err(|e| Failure::bad_request(e.to_string()))
}

/// A process id from a path: 1 to the largest `pid_t`, else 400.
pub fn checked_pid(text: &str) -> Result<u32, Failure> {
    match text.parse::<u32>() {
        Ok(pid) if pid >= 1 && pid <= i32::MAX as u32 => Ok(pid),
        _ => Err(Failure::bad_request(format!(
            "{text:?} is not a process id (a whole number from 1 to {})",
            i32::MAX
        ))),
    }
}
