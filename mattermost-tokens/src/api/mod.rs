//! Endpoint methods on [`Acting`](crate::Acting), one module per API area.

mod channels;
mod system;
mod tokens;
mod users;

pub use users::MAX_PER_PAGE;

/// A listing read page by page as it is consumed (`GET ...?page=&per_page=`
/// until a short page): what every listing method returns.
pub type Pages<T> = futures::stream::BoxStream<'static, Result<T, Error>>;

use crate::error::Error;
use crate::ids::is_valid_mattermost_id;

/// Refuses an id that is not 26 lowercase letters and digits before it is put
/// into a URL path (the server answers 400 for those anyway).
pub(crate) fn check_id(kind: &str, id: &str) -> Result<(), Error> {
    if id == "me" || is_valid_mattermost_id(id) {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "{kind} {id:?} is not a Mattermost id (26 lowercase letters and digits)"
        )))
    }
}
