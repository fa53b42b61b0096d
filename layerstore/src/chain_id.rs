//! Chain IDs: the names of layers, per the OCI image spec.
//!
//! `chain_id(L1) = diff_id(L1)`; `chain_id(Ln) = sha256(chain_id(Ln-1) + " " + diff_id(Ln))`
//! over the strings in their `algorithm:hex` form. A chain ID thus names a layer together
//! with everything below it.

use cargohold_core::Digest;

/// The chain ID of the layer with `diff_id` applied on top of the layer `parent`.
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(parent) => Digest::sha256(format!("{parent} {diff_id}").as_bytes()),
    }
}

/// The chain ID of a whole stack of diff IDs, bottom first; `None` for no layers.
pub fn chain_id_of_stack<'a>(diff_ids: impl IntoIterator<Item = &'a Digest>) -> Option<Digest> {
    diff_ids
        .into_iter()
        .fold(None, |parent, diff| Some(chain_id(parent.as_ref(), diff)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_layer_chain_id_is_its_diff_id() {
        let d = Digest::sha256(b"layer one");
        assert_eq!(chain_id(None, &d), d);
    }

    #[test]
    fn second_layer_hashes_parent_space_diff() {
        let a = Digest::sha256(b"a");
        let b = Digest::sha256(b"b");
        let expected = Digest::sha256(format!("{a} {b}").as_bytes());
        assert_eq!(chain_id(Some(&a), &b), expected);
        assert_ne!(chain_id(Some(&a), &b), chain_id(Some(&b), &a));
        assert_eq!(chain_id_of_stack([&a, &b]), Some(expected));
        assert_eq!(chain_id_of_stack(std::iter::empty()), None);
    }
}
